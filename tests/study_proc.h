/*
 * study_proc.h — helpers for the study tests: running build/mlpc as a
 * child process with its output in files, and reading the results
 * database. Header-only; each test includes it once.
 */
#ifndef STUDY_PROC_H
#define STUDY_PROC_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "util.h"

#ifndef MLPC_BIN
#error "MLPC_BIN: the path of the mlpc binary (tests/CMakeLists.txt)"
#endif

/* Starts mlpc with args (NULL-terminated) in its own process group,
   stdout and stderr into files, emptied first; returns its pid. */
static pid_t start_mlpc(const char *out, const char *err, const char *const *args) {
  const char *argv[64] = {MLPC_BIN};
  int n = 1;
  for (; args[n - 1] && n < 63; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  fflush(stdout), fflush(stderr);
  /* Emptied here, before the fork: a caller that reads them at once must
     not see the previous run's output. */
  int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(o, 1), dup2(e, 2);
    execv(MLPC_BIN, (char *const *)argv);
    _exit(127);
  }
  close(o), close(e);
  return pid;
}

/* Waits for a child; its exit status, or 128 + the signal. */
static int wait_status(pid_t pid) {
  int st;
  if (waitpid(pid, &st, 0) < 0)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs mlpc to the end; its exit status. */
__attribute__((unused)) static int run_mlpc(const char *out, const char *err, const char *const *args) {
  return wait_status(start_mlpc(out, err, args));
}

/* Sleeps for s seconds. */
__attribute__((unused)) static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts))
    ;
}

/* Reads a whole text file into a new string ("" if absent). */
static char *read_all(const char *path) {
  size_t len;
  char *text = util_slurp(path, &len);
  return text ? text : calloc(1, 1);
}

/* Whether the text file at path holds s. */
__attribute__((unused)) static int file_has(const char *path, const char *s) {
  char *text = read_all(path);
  int has = strstr(text, s) != NULL;
  free(text);
  return has;
}

/* Formats into a static ring of buffers (the last 64 stay valid). */
static const char *fmt(const char *f, ...) {
  static char ring[64][1024];
  static int k;
  char *b = ring[k++ % 64];
  va_list ap;
  va_start(ap, f);
  vsnprintf(b, sizeof ring[0], f, ap);
  va_end(ap);
  return b;
}

/* The parent of process p, from /proc; 0 if it is gone. */
__attribute__((unused)) static pid_t parent_of(pid_t p) {
  char *stat = read_all(fmt("/proc/%d/stat", p)), *paren = strrchr(stat, ')');
  int ppid = 0;
  if (!paren || sscanf(paren + 2, "%*c %d", &ppid) != 1)
    ppid = 0;
  free(stat);
  return (pid_t)ppid;
}

/* Opens a database read-only. */
__attribute__((unused)) static sqlite3 *open_db(const char *path) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    return NULL;
  return db;
}

/* The first column of the first row of sql, as an integer. */
__attribute__((unused)) static long long query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* The first column of the first row of sql, as text in a static buffer. */
__attribute__((unused)) static const char *query_text(sqlite3 *db, const char *sql) {
  static char buf[1024];
  sqlite3_stmt *st = NULL;
  buf[0] = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
      sqlite3_column_text(st, 0))
    snprintf(buf, sizeof buf, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return buf;
}

/* Appends printf-style text to a growing string. */
__attribute__((unused, format(printf, 4, 5)))
static void append(char **out, size_t *len, size_t *cap, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(NULL, 0, f, ap);
  va_end(ap);
  if (*len + (size_t)n + 1 > *cap)
    *out = realloc(*out, *cap = 2 * (*len + (size_t)n + 1));
  va_start(ap, f);
  vsnprintf(*out + *len, *cap - *len, f, ap);
  va_end(ap);
  *len += (size_t)n;
}

/* A REAL column as an exact value (%a), or NULL. */
__attribute__((unused)) static const char *exact(sqlite3_stmt *st, int i) {
  static char buf[4][64];
  static int k;
  char *b = buf[k++ % 4];
  if (sqlite3_column_type(st, i) == SQLITE_NULL)
    return "NULL";
  snprintf(b, 64, "%a", sqlite3_column_double(st, i));
  return b;
}

/* Every run's health figures, each line led by the run's key (key: an
   SQL expression over runs r), in a fixed order. */
__attribute__((unused)) static void keyed_health(sqlite3 *db, const char *key, char **out,
                                                 size_t *len, size_t *cap) {
  sqlite3_stmt *st = NULL;
  char sql[1024];
  snprintf(sql, sizeof sql, "SELECT %s, h.epoch, h.layer, h.figure, h.value, h.na FROM runs r "
           "JOIN health h ON h.run_id = r.id ORDER BY 1, h.epoch, h.layer, h.figure", key);
  sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  while (sqlite3_step(st) == SQLITE_ROW)
    append(out, len, cap, "%s %d %s %s %s %d\n", sqlite3_column_text(st, 0),
           sqlite3_column_int(st, 1), sqlite3_column_text(st, 2), sqlite3_column_text(st, 3),
           exact(st, 4), sqlite3_column_int(st, 5));
  sqlite3_finalize(st);
}

/* Every run's figures, epoch by epoch (with the validation figures and
   the epoch early stopping kept), then its health figures, each
   line led by the run's key (an SQL expression over runs r), in a fixed
   order, as one string of exact values (%a), so that two databases can
   be compared bit for bit whatever order their runs were recorded in. */
__attribute__((unused)) static char *keyed_figures(sqlite3 *db, const char *key) {
  sqlite3_stmt *st = NULL;
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap), sql[1024];
  snprintf(sql, sizeof sql, "SELECT %s, r.status, r.diverged_epoch, r.diverged_step, "
           "r.best_epoch, e.epoch, e.train_loss, e.test_loss, e.test_acc, e.val_loss, "
           "e.val_acc FROM runs r LEFT JOIN epochs e ON e.run_id = r.id ORDER BY 1, e.epoch",
           key);
  sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  while (sqlite3_step(st) == SQLITE_ROW)
    append(&out, &len, &cap, "%s %s %lld %lld %lld %d %a %a %a %a %a\n",
           sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
           sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5),
           sqlite3_column_double(st, 6), sqlite3_column_double(st, 7),
           sqlite3_column_double(st, 8), sqlite3_column_double(st, 9),
           sqlite3_column_double(st, 10));
  sqlite3_finalize(st);
  keyed_health(db, key, &out, &len, &cap);
  return out;
}

/* keyed_figures by the runs' key: (code, seed, data, settings). */
__attribute__((unused)) static char *all_figures(sqlite3 *db) {
  return keyed_figures(db, "r.code_hash || ' ' || r.seed || ' ' || r.data_hash || ' ' || "
                           "r.settings");
}

#endif
