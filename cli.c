/*
 * cli.c — the command line's table (cli.h) and the checks every flag
 * goes through, for a model (main.c) and a study (study/driver.c) alike.
 * What the flags then mean is theirs.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "mlpc.h"

typedef struct {
  const char *name;
  const char *value;  /* its value's name in messages, or NULL: none    */
  unsigned kind;      /* CLI_MODEL, CLI_STUDY and CLI_PATH bits         */
  unsigned serves;    /* the actions it serves (CLI_S bits); 0: action  */
  const char *key;    /* the model key it overrides, or NULL            */
} Flag;

#define ROW_(e, name, value, kind, serves, key) {name, value, kind, serves, key},
static const Flag flags[CLI_NFLAGS] = {CLI_FLAGS(ROW_)};
#undef ROW_

/* The flag called a, or -1. */
static int find(const char *a) {
  for (int f = 0; f < CLI_NFLAGS; f++)
    if (!strcmp(a, flags[f].name))
      return f;
  return -1;
}

int cli_takes_value(const char *a) {
  int f = find(a);
  return f >= 0 && flags[f].value;
}

const char *cli_name(int flag) {
  return flags[flag].name;
}

const char *cli_key(int flag) {
  return flags[flag].key;
}

/* Writes a message into err; returns -1. */
__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

/* Writes the actions of mask for kind as "--run, --emit FILE.c or
   --dump-ir" (conj "or"), with their values when with_value; their
   count. */
static int actions(char *buf, size_t size, unsigned mask, int kind, int with_value,
                   const char *conj) {
  int list[CLI_NFLAGS], n = 0;
  size_t len = 0;
  for (int f = 0; f < CLI_NFLAGS; f++)
    if ((mask >> f & 1) && (flags[f].kind & kind))
      list[n++] = f;
  buf[0] = '\0';
  for (int i = 0; i < n && len < size; i++) {
    const Flag *F = &flags[list[i]];
    len += snprintf(buf + len, size - len, "%s%s%s%s", i == 0 ? "" : i == n - 1 ? conj : ", ",
                    F->name, with_value && F->value ? " " : "",
                    with_value && F->value ? F->value : "");
  }
  return n;
}

/* Refuses a flag that is for the other kind of file. */
static int other_kind(int f, int kind, const char *file, char *err, size_t errlen) {
  if (kind == CLI_STUDY)
    return fail(err, errlen, "%s: error: does not apply to a study (%s)%s", flags[f].name, file,
                f == FL_SEED ? "; its runs take the study file's \"seeds\"" : "");
  return fail(err, errlen, "%s: error: applies to studies only (docs/study-format.md), and %s "
              "is a model%s", flags[f].name, file,
              f == FL_DUMP_STUDY ? "; a model's code is shown by --dump-ir and --emit-model" : "");
}

/* Reads flag f at argv[*i], and its value, into a. */
static int read_flag(int f, int argc, char **argv, int *i, int kind, const char *file,
                     CliArgs *a, char *err, size_t errlen) {
  const Flag *F = &flags[f];
  const char *v = F->name;
  if (!(F->kind & kind))
    return other_kind(f, kind, file, err, errlen);
  if (F->value && (*i + 1 >= argc || find(argv[*i + 1]) >= 0))
    return fail(err, errlen, "%s: error: needs a value (%s)%s%s%s", F->name, F->value,
                *i + 1 < argc ? ", got the flag '" : "", *i + 1 < argc ? argv[*i + 1] : "",
                *i + 1 < argc ? "'" : "");
  if (F->value)
    v = argv[++*i];
  if (a->v[f] && F->value)
    return fail(err, errlen, "%s: error: given twice ('%s', then '%s'); give it once", F->name,
                a->v[f], v);
  if (a->v[f])
    return fail(err, errlen, "%s: error: given twice; give it once", F->name);
  if ((F->kind & CLI_PATH) && strlen(v) >= PATH_MAX)
    return fail(err, errlen, "%s: error: the path is %zu bytes long, longer than any the "
                "system takes (at most %d)", F->name, strlen(v), PATH_MAX - 1);
  a->v[f] = v;
  return 0;
}

/* Refuses flag f, which serves none of the actions given. */
static int unserved(int f, int kind, const CliArgs *a, char *err, size_t errlen) {
  static const char *const tails[] = {"", "which is not", "neither of which is",
                                      "none of which is"};
  char list[256], hint[128] = "";
  int n = actions(list, sizeof list, flags[f].serves, kind, 0, " and ");
  if (a->v[FL_EMIT] && (f == FL_JSON || f == FL_HEALTH || f == FL_NO_SHUFFLE))
    snprintf(hint, sizeof hint, "; the trainer --emit writes takes %s itself", flags[f].name);
  return fail(err, errlen, "%s: error: applies to %s only, %s given%s", flags[f].name, list,
              tails[n < 3 ? n : 3], hint);
}

/* Needs an action, and refuses a flag that serves none of those given. */
static int check_actions(const CliArgs *a, int kind, char *err, size_t errlen) {
  unsigned given = 0, all = 0;
  char list[256];
  for (int f = 0; f < CLI_NFLAGS; f++)
    if (!flags[f].serves)
      all |= 1u << f, given |= (unsigned)(a->v[f] != NULL) << f;
  if (!given) {
    actions(list, sizeof list, all, kind, 1, " or ");
    return fail(err, errlen, "error: nothing to do: give %s%s", list,
                kind == CLI_STUDY ? " (docs/study-format.md)" : "");
  }
  for (int f = 0; f < CLI_NFLAGS; f++)
    if (a->v[f] && flags[f].serves && !(flags[f].serves & given))
      return unserved(f, kind, a, err, errlen);
  return 0;
}

int cli_backend(const CliArgs *a) {
  for (int b = 0; a->v[FL_BACKEND] && b < NBACKENDS; b++)
    if (!strcmp(a->v[FL_BACKEND], backend_names[b]))
      return b;
  return -1;
}

/* The directory part of path into dir ("." when none); its last part. */
static const char *split(const char *path, char *dir, size_t size);

/* Refuses an output that cannot be written, before any work is done: a
   file's name that is a directory or lies in no directory, a directory
   (--out) that is something else. */
static int check_place(int f, const char *path, char *err, size_t errlen) {
  struct stat st;
  char dir[PATH_MAX];
  int is = stat(path, &st) == 0, want_dir = f == FL_OUT;
  if (is && want_dir && !S_ISDIR(st.st_mode))
    return fail(err, errlen, "%s: error: '%s' is not a directory (the study's tables go "
                "into a directory)", cli_name(f), path);
  if (want_dir)
    return 0;
  if ((is && S_ISDIR(st.st_mode)) || (*path && path[strlen(path) - 1] == '/'))
    return fail(err, errlen, "%s: error: '%s' is a directory; give a file's name",
                cli_name(f), path);
  split(path, dir, sizeof dir);
  if (!is && (stat(dir, &st) || !S_ISDIR(st.st_mode)))
    return fail(err, errlen, "%s: error: '%s': no directory '%s' to write it in",
                cli_name(f), path, dir);
  return 0;
}

/* Refuses an empty name for a path, and checks every output's place
   (check_place). */
static int check_places(const CliArgs *a, char *err, size_t errlen) {
  static const int outputs[] = {FL_EMIT, FL_EMIT_MODEL, FL_EMIT_INFERENCE, FL_SAVE_WEIGHTS,
                                FL_OUT};
  static const int paths[] = {FL_EMIT, FL_EMIT_MODEL, FL_EMIT_INFERENCE, FL_SAVE_WEIGHTS,
                              FL_OUT, FL_DB, FL_LOAD_WEIGHTS, FL_DATA};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (a->v[paths[i]] && !*a->v[paths[i]])
      return fail(err, errlen, "%s: error: an empty name", cli_name(paths[i]));
  for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++)
    if (a->v[outputs[i]] && check_place(outputs[i], a->v[outputs[i]], err, errlen))
      return -1;
  return 0;
}

int cli_parse(int argc, char **argv, const char *file, int kind, CliArgs *a, char *err,
              size_t errlen) {
  *a = (CliArgs){{0}};
  for (int i = 1; i < argc; i++) {
    int f = argv[i] == file ? -2 : find(argv[i]);
    if (f == -1)
      return fail(err, errlen, "error: unknown option '%s' (see mlpc --help%s)", argv[i],
                  kind == CLI_STUDY ? " and docs/study-format.md" : "");
    if (f >= 0 && read_flag(f, argc, argv, &i, kind, file, a, err, errlen))
      return -1;
  }
  if (a->v[FL_BACKEND] && cli_backend(a) < 0)
    return fail(err, errlen, "--backend: error: unknown backend '%s'; expected tcc, gcc or tiered",
                a->v[FL_BACKEND]);
  return check_actions(a, kind, err, errlen) || check_places(a, err, errlen) ? -1 : 0;
}

/* The directory part of path into dir ("." when none); its last part. */
static const char *split(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return snprintf(dir, size, "."), path;
  snprintf(dir, size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
  return slash + 1;
}

int cli_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  char da[PATH_MAX], db[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
  int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
  if (!strcmp(a, b))
    return 1;
  if (ea || eb)  /* one that exists is another file than one that does not */
    return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  const char *na = split(a, da, sizeof da), *nb = split(b, db, sizeof db);
  return !strcmp(na, nb) && realpath(da, ra) && realpath(db, rb) && !strcmp(ra, rb);
}
