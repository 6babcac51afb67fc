/*
 * db.c — the results database: one SQLite file (default out/mlpc.sqlite)
 * that every study writes and every table is computed from.
 *
 * A run is keyed by what decides its result: (code_hash, seed, data_hash,
 * settings), unique, so a run is recorded once whatever study asks for it,
 * and a study started again takes what is there. Each run goes in with
 * its epochs and its study membership in one transaction; with the WAL
 * journal and synchronous=FULL, a process killed at any moment leaves
 * either the whole run or none of it. Only the parent process writes.
 *
 * Tables (docs/study-format.md, "The database"):
 *   runs        one row per run: key, model, data, version, backend,
 *               status, where it diverged, final figures (under early
 *               stopping, those of the epoch it kept), time
 *   epochs      one row per finished epoch of a run
 *   health      one row per health figure per probe of a run (epoch 0:
 *               the initial weights), in the run's transaction
 *   study_runs  which runs make up each study's experiments
 * PRAGMA user_version numbers the schema (ST_DB_SCHEMA). Version 1 had
 * no health table: opening it adds the table and keeps every run; a run
 * recorded without health figures is run again by the next study that
 * needs it, and gets the new run's figures only if the new run repeats
 * the recorded one bit for bit. Versions 1 and 2 required an epoch's
 * train loss, which an epoch without a training step does not have:
 * opening them rebuilds the epochs table with the same rows. Versions
 * before ST_DB_SCHEMA_VAL had no validation figures, and those before
 * ST_DB_SCHEMA_CODE did not say which code trained a run (tiered runs
 * move from tcc's to gcc's): opening them adds the columns each table
 * lacks, NULL for the runs they hold (which had no validation split).
 * A newer schema than ours is refused.
 *
 * A database is mlpc's when its PRAGMA application_id says so
 * (ST_DB_APP_ID), or when it is empty (a new file); one that mlpc wrote
 * before it set the id (schema 1 or 2, no id) is taken when its tables
 * are exactly those of its version, and stamped. Any other file is left
 * byte for byte as it was: not one write before it is known to be ours.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include <sqlite3.h>
#include "study.h"

static const char schema[] =
  "CREATE TABLE IF NOT EXISTS runs (\n"
  "  id INTEGER PRIMARY KEY,\n"
  "  code_hash TEXT NOT NULL,       -- of the generated unit, as compiled\n"
  "  seed INTEGER NOT NULL,\n"
  "  data_hash TEXT NOT NULL,       -- of the data set's contents\n"
  "  settings TEXT NOT NULL,        -- JSON: backend, epochs, max_batches, mlpc, shuffle\n"
  "  model TEXT NOT NULL,           -- the model file, with this seed\n"
  "  name TEXT NOT NULL,            -- the model's name\n"
  "  data TEXT NOT NULL,            -- the data set as the model names it\n"
  "  data_dir TEXT NOT NULL,\n"
  "  mlpc_version TEXT NOT NULL,\n"
  "  backend TEXT NOT NULL,\n"
  "  status TEXT NOT NULL CHECK (status IN ('finished', 'diverged')),\n"
  "  epochs INTEGER NOT NULL,       -- epochs with figures\n"
  "  diverged_epoch INTEGER,        -- where the loss stopped being finite\n"
  "  diverged_step INTEGER,         -- its training step; 0: in the test pass\n"
  "  train_loss REAL, test_loss REAL, test_acc REAL, -- after the last epoch\n"
  "  seconds REAL NOT NULL,\n"
  "  recorded TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),\n"
  "  val_loss REAL, val_acc REAL,   -- on the validation split; NULL without one\n"
  "  best_epoch INTEGER,            -- the epoch early stopping kept; NULL without\n"
  "  code TEXT,                     -- the code that trained it: tcc, gcc, or\n"
  "                                 -- 'tcc, then gcc' (tiered); NULL before schema 5\n"
  "  gcc_epoch INTEGER,             -- tiered: where gcc's code took over: the epoch,\n"
  "  gcc_step INTEGER,              -- and the training step,\n"
  "  gcc_test_batch INTEGER,        -- or the batch of the test pass\n"
  "  UNIQUE (code_hash, seed, data_hash, settings)\n"
  ");\n"
  "CREATE TABLE IF NOT EXISTS epochs (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
  "  epoch INTEGER NOT NULL,\n"
  "  train_loss REAL,                -- NULL: the epoch took no training step\n"
  "  test_loss REAL NOT NULL, test_acc REAL NOT NULL,\n"
  "  seconds REAL NOT NULL,\n"
  "  val_loss REAL, val_acc REAL,   -- NULL without a validation split\n"
  "  PRIMARY KEY (run_id, epoch)\n"
  ") WITHOUT ROWID;\n"
  "CREATE TABLE IF NOT EXISTS health (\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
  "  epoch INTEGER NOT NULL,        -- 0: the initial weights; then after each epoch\n"
  "  layer TEXT NOT NULL,           -- hidden1 ..., or a tensor: fc1.weight ...\n"
  "  figure TEXT NOT NULL,          -- pre_mean ... dead; norm, grad_norm, update_ratio\n"
  "  value REAL,                    -- NULL when not applicable (na = 1) or NaN (na = 0)\n"
  "  na INTEGER NOT NULL CHECK (na IN (0, 1)),\n"
  "  PRIMARY KEY (run_id, epoch, layer, figure)\n"
  ") WITHOUT ROWID;\n"
  "CREATE TABLE IF NOT EXISTS study_runs (\n"
  "  study TEXT NOT NULL,\n"
  "  experiment TEXT NOT NULL,\n"
  "  position INTEGER NOT NULL,     -- the experiment's place in the study\n"
  "  factor TEXT NOT NULL, value TEXT NOT NULL,\n"
  "  seed INTEGER NOT NULL,\n"
  "  run_id INTEGER NOT NULL REFERENCES runs(id),\n"
  "  PRIMARY KEY (study, experiment, seed)\n"
  ");\n";

/* Writes SQLite's last message after what; returns -1. */
static int db_fail(sqlite3 *db, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
  return -1;
}

/* Runs SQL without results; 0 or -1. */
static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                              : db_fail(db, sql, err, errlen);
}

/* Creates the directory a file goes in, and its parents. */
static void make_parent(const char *path) {
  char dir[MAX_PATH_LEN];
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(dir, 0777);
      *p = '/';
    }
}

/* The first column of the first row of sql, as an integer; -1 on error. */
static long long query_int(sqlite3 *db, const char *sql, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else
    db_fail(db, sql, err, errlen);
  sqlite3_finalize(st);
  return v;
}

/* The tables of the schemas written before the application id (1 and 2;
   1 without health), as "name: columns", in order of name. */
static const char *const legacy_tables[] = {
  "epochs: run_id epoch train_loss test_loss test_acc seconds",
  "health: run_id epoch layer figure value na",
  "runs: id code_hash seed data_hash settings model name data data_dir mlpc_version "
  "backend status epochs diverged_epoch diverged_step train_loss test_loss test_acc "
  "seconds recorded",
  "study_runs: study experiment position factor value seed run_id",
  NULL,
};

/* A database's tables as legacy_tables lists them, one a line, then its
   other objects (indexes but SQLite's own, views, triggers), if any. */
static const char schema_of[] =
  "SELECT coalesce(group_concat(t, char(10)), '') FROM ("
  "  SELECT m.name || ':' || (SELECT group_concat(' ' || p.name, '') FROM "
  "    pragma_table_info(m.name) p) AS t FROM sqlite_master m WHERE m.type = 'table' "
  "  UNION ALL SELECT type || ' ' || name FROM sqlite_master WHERE type != 'table' AND "
  "    name NOT LIKE 'sqlite_autoindex_%' ORDER BY 1)";

/* Whether the database's tables are exactly those of schema version v
   (1 or 2) as mlpc wrote it before it set an application id. */
static int legacy_schema(sqlite3 *db, long long v) {
  char want[1024] = "";
  sqlite3_stmt *st = NULL;
  for (const char *const *t = legacy_tables; *t; t++)
    if (v > 1 || strncmp(*t, "health:", 7))
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", *want ? "\n" : "",
               *t);
  int same = sqlite3_prepare_v2(db, schema_of, -1, &st, NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW &&
             !strcmp((const char *)sqlite3_column_text(st, 0), want);
  sqlite3_finalize(st);
  return same;
}

/* Decides, reading only, whether the database is mlpc's: 0 if so, 2 if
   not (err says what it is), -1 on an error. */
static int claim(sqlite3 *db, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT a.application_id, u.user_version, (SELECT count(*) "
                             "FROM sqlite_master), (SELECT coalesce(group_concat(name, ', '), "
                             "'none') FROM sqlite_master WHERE type = 'table') FROM "
                             "pragma_application_id a, pragma_user_version u", -1, &st,
                         NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    int notadb = sqlite3_errcode(db) == SQLITE_NOTADB;
    sqlite3_finalize(st);
    db_fail(db, notadb ? "not an mlpc results database" : "reading the database", err, errlen);
    return notadb ? 2 : -1;
  }
  long long id = sqlite3_column_int64(st, 0), v = sqlite3_column_int64(st, 1),
            objects = sqlite3_column_int64(st, 2);
  int ours = id == ST_DB_APP_ID || (!id && !v && !objects) ||
             (!id && (v == 1 || v == 2) && legacy_schema(db, v));
  if (!ours)
    snprintf(err, errlen, "not an mlpc results database (application_id %lld, user_version "
             "%lld, tables: %.200s): mlpc changes only its own; give another --db", id, v,
             (const char *)sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  return ours ? 0 : 2;
}

/* Before version 3, epochs.train_loss was NOT NULL: the old table is
   set aside for the schema to create the new one (moved_epochs copies
   its rows over). */
static const char epochs_aside[] = "ALTER TABLE epochs RENAME TO epochs_v2";
static const char moved_epochs[] = "INSERT INTO epochs (run_id, epoch, train_loss, test_loss, "
                                   "test_acc, seconds) SELECT * FROM epochs_v2; "
                                   "DROP TABLE epochs_v2";

/* What an upgrade changes, each said in its note (change_text). */
enum { UP_HEALTH = 1, UP_EPOCHS = 2, UP_VAL = 4, UP_CODE = 8, UP_NCHANGES = 4 };
static const char *const change_text[UP_NCHANGES] = {
  "a table of health figures",
  "an epoch's train loss may be NULL, when it took no training step",
  "the validation figures of runs and epochs, and the epoch early stopping keeps",
  "each run says which code trained it, from now on",
};

/* The columns versions after 3 added: ST_DB_SCHEMA_VAL the validation
   figures, ST_DB_SCHEMA_CODE the code that trained a run. */
static const struct {
  const char *table, *name, *type;
  int change;
} added_columns[] = {
  {"runs", "val_loss", "REAL", UP_VAL},     {"runs", "val_acc", "REAL", UP_VAL},
  {"runs", "best_epoch", "INTEGER", UP_VAL}, {"epochs", "val_loss", "REAL", UP_VAL},
  {"epochs", "val_acc", "REAL", UP_VAL},    {"runs", "code", "TEXT", UP_CODE},
  {"runs", "gcc_epoch", "INTEGER", UP_CODE}, {"runs", "gcc_step", "INTEGER", UP_CODE},
  {"runs", "gcc_test_batch", "INTEGER", UP_CODE},
};

/* Adds the columns of added_columns that the tables lack; returns the
   changes made (UP_*), or -1. */
static int add_columns(sqlite3 *db, char *err, size_t errlen) {
  char sql[256];
  int made = 0;
  for (size_t i = 0; i < sizeof added_columns / sizeof added_columns[0]; i++) {
    const char *table = added_columns[i].table, *name = added_columns[i].name;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = "
             "'%s'", table, name);
    long long have = query_int(db, sql, err, errlen);
    snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", table, name,
             added_columns[i].type);
    if (have < 0 || (!have && exec(db, sql, err, errlen)))
      return -1;
    made |= have ? 0 : added_columns[i].change;
  }
  return made;
}

/* Says what an upgrade from version v changed (made: UP_*). */
static void upgrade_note(FILE *note, long long v, int made, long long runs) {
  char what[512] = "";
  for (int i = 0; i < UP_NCHANGES; i++)
    if (made & 1 << i)
      snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", *what ? "; " : "",
               change_text[i]);
  fprintf(note, "mlpc: note: upgraded the database from schema version %lld to %d (%s); its "
          "%lld runs are kept%s\n", v, ST_DB_SCHEMA, *what ? what : "its tables had every column already",
          runs, made & UP_HEALTH ? ", and a study run again adds the health figures of its runs"
          : "");
}

/* Creates the schema's tables, or brings an older version v's to them
   (inside the open transaction): the health table (version 1), the
   epochs table rebuilt (1 and 2), and the columns each table lacks.
   Returns the changes made (UP_*), or -1. */
static int upgrade_tables(sqlite3 *db, long long v, char *err, size_t errlen) {
  int rebuild = v && v < 3;
  if ((rebuild && exec(db, epochs_aside, err, errlen)) || exec(db, schema, err, errlen) ||
      (rebuild && exec(db, moved_epochs, err, errlen)))
    return -1;
  int made = v && v < ST_DB_SCHEMA ? add_columns(db, err, errlen) : 0;
  return made < 0 ? -1 : made | (v && v < 2 ? UP_HEALTH : 0) | (rebuild ? UP_EPOCHS : 0);
}

/* Brings the schema to ST_DB_SCHEMA inside the open transaction (0; 2 for
   a newer schema, the user's; -1 on an error): creates it, or upgrades an
   older one (upgrade_tables), or refuses a newer one. Notes an upgrade. */
static int upgrade(sqlite3 *db, FILE *note, char *err, size_t errlen) {
  char set[128];
  long long v = query_int(db, "PRAGMA user_version", err, errlen);
  if (v < 0)
    return -1;
  if (v > ST_DB_SCHEMA) {
    snprintf(err, errlen, "the database's schema is version %lld, newer than this mlpc's "
             "(%d): it was written by a newer mlpc; use that one, or another --db", v,
             ST_DB_SCHEMA);
    return 2; /* the user's: another --db */
  }
  long long runs = v ? query_int(db, "SELECT count(*) FROM runs", err, errlen) : 0;
  int old = v && v < ST_DB_SCHEMA;
  snprintf(set, sizeof set, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           ST_DB_SCHEMA, ST_DB_APP_ID);
  int made = runs < 0 ? -1 : upgrade_tables(db, v, err, errlen);
  if (made < 0 || exec(db, set, err, errlen))
    return -1;
  if (old && note)
    upgrade_note(note, v, made, runs);
  return 0;
}

/* How long to wait for another process's lock on the database, in ms:
   $MLPC_DB_BUSY_MS, or a minute. */
static int db_busy_ms(void) {
  const char *s = getenv("MLPC_DB_BUSY_MS");
  char *end;
  long ms = s && *s ? strtol(s, &end, 10) : 60000;
  return s && *s && (*end || ms < 0 || ms > 86400000) ? 60000 : (int)ms;
}

/* A big-endian 32-bit field of a database file's header. */
static unsigned long header_u32(const unsigned char *h, int at) {
  return (unsigned long)h[at] << 24 | h[at + 1] << 16 | h[at + 2] << 8 | h[at + 3];
}

/* Whether path + suffix exists ("-journal", "-wal"). */
static int beside(const char *path, const char *suffix) {
  char p[4200];
  struct stat st;
  snprintf(p, sizeof p, "%s%s", path, suffix);
  return stat(p, &st) == 0;
}

/* Removes path + suffix unless it was there before (had): the empty WAL
   and shared memory that reading a WAL database leaves. */
static void unbeside(const char *path, const char *suffix, int had) {
  char p[4200];
  snprintf(p, sizeof p, "%s%s", path, suffix);
  if (!had)
    remove(p);
}

/* Reads the file's header before SQLite opens it: opening lets SQLite
   roll back another program's hot journal, which changes a file that is
   not ours. Refuses (2) a file that is not an SQLite database, one that
   another program marks as its own, and one not marked as mlpc's with a
   rollback journal beside it (mlpc's databases are in WAL mode; one
   killed before its first commit may have a WAL beside it, which
   st_db_open keeps from being checkpointed into a file found not ours). */
static int peek(const char *path, char *err, size_t errlen) {
  unsigned char h[100];
  FILE *f = fopen(path, "rb");
  if (!f)
    return 0; /* a new file, or one SQLite reports on */
  size_t n = fread(h, 1, sizeof h, f);
  fclose(f);
  if (n == 0)
    return 0;
  if (n < sizeof h || memcmp(h, "SQLite format 3", 16))
    return snprintf(err, errlen, "not an mlpc results database: not a database file (no "
                    "SQLite header); mlpc changes only its own; give another --db"), 2;
  unsigned long id = header_u32(h, 68);
  if (id == ST_DB_APP_ID || (!id && !beside(path, "-journal")))
    return 0; /* mlpc's use WAL: a rollback journal is another program's */
  snprintf(err, errlen, "not an mlpc results database (application_id %lu%s): mlpc changes "
           "only its own; give another --db", id, id ? "" : ", and an unfinished "
           "transaction's journal beside it");
  return 2;
}

int st_db_open(const char *path, sqlite3 **db, FILE *note, char *err, size_t errlen) {
  int pk = peek(path, err, errlen);
  if (pk)
    return *db = NULL, pk;
  make_parent(path);
  if (sqlite3_open(path, db) != SQLITE_OK) {
    db_fail(*db, "cannot open", err, errlen);  /* the caller names path */
    sqlite3_close(*db);
    return -1;
  }
  sqlite3_busy_timeout(*db, db_busy_ms());
  sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL); /* until it is ours */
  int wal = beside(path, "-wal"), shm = beside(path, "-shm");
  int rc = claim(*db, err, errlen);
  if (rc) {
    sqlite3_close(*db);
    unbeside(path, "-wal", wal), unbeside(path, "-shm", shm);
    return rc;
  }
  sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
  if (exec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                "PRAGMA foreign_keys=ON", err, errlen) ||
      exec(*db, "BEGIN IMMEDIATE", err, errlen))
    return sqlite3_close(*db), -1;
  int up = upgrade(*db, note, err, errlen);
  if (up || exec(*db, "COMMIT", err, errlen)) {
    sqlite3_exec(*db, "ROLLBACK", NULL, NULL, NULL);
    return sqlite3_close(*db), up > 0 ? up : -1;
  }
  return 0;
}

void st_db_close(sqlite3 *db) { sqlite3_close(db); }

/* Prepares a statement, or says why not. */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    db_fail(db, sql, err, errlen);
  return st;
}

/* Binds text parameters in order from i, ending at NULL. */
static void bind_texts(sqlite3_stmt *st, int i, const char *const *v) {
  for (; *v; v++, i++)
    sqlite3_bind_text(st, i, *v, -1, SQLITE_TRANSIENT);
}

/* The id of the run with t's key, 0 if none, -1 on error; *no_health
   says whether it has no health figures. */
static long long find_run(sqlite3 *db, const StTask *t, const StPlan *p, int *no_health,
                          char *err, size_t errlen) {
  sqlite3_stmt *st = prepare(db, "SELECT id, NOT EXISTS (SELECT 1 FROM health WHERE run_id = "
                                 "runs.id) FROM runs WHERE code_hash = ?1 AND seed = ?2 "
                                 "AND data_hash = ?3 AND settings = ?4", err, errlen);
  if (!st)
    return -1;
  sqlite3_bind_text(st, 1, p->codes[t->code].hash.hex, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)t->seed);
  bind_texts(st, 3, (const char *[]){t->data_hash.hex, t->settings, NULL});
  int rc = sqlite3_step(st);
  long long id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : rc == SQLITE_DONE ? 0 : -1;
  *no_health = rc == SQLITE_ROW && sqlite3_column_int(st, 1);
  if (id < 0)
    db_fail(db, "looking up a run", err, errlen);
  sqlite3_finalize(st);
  return id;
}

/* Adds the membership rows of every experiment and seed task serves. */
static int add_members(sqlite3 *db, const StPlan *p, int task, char *err, size_t errlen) {
  const Study *s = p->s;
  sqlite3_stmt *st = prepare(db, "INSERT OR REPLACE INTO study_runs VALUES (?1, ?2, ?3, ?4, "
                                 "?5, ?6, ?7)", err, errlen);
  int rc = st ? 0 : -1;
  for (int i = 0; st && !rc && i < s->nexp * s->nseeds; i++) {
    const StExperiment *e = &s->exp[i / s->nseeds];
    if (p->task_of[i] != task || i % s->nseeds >= p->nwant[i / s->nseeds])
      continue;
    sqlite3_reset(st);
    bind_texts(st, 1, (const char *[]){s->name, e->name, NULL});
    sqlite3_bind_int(st, 3, i / s->nseeds);
    bind_texts(st, 4, (const char *[]){e->factor, e->value, NULL});
    sqlite3_bind_int64(st, 6, (sqlite3_int64)s->seeds[i % s->nseeds]);
    sqlite3_bind_int64(st, 7, p->tasks[task].run_id);
    if (sqlite3_step(st) != SQLITE_DONE)
      rc = db_fail(db, "recording a study's run", err, errlen);
  }
  sqlite3_finalize(st);
  return rc;
}

int st_db_prepare(sqlite3 *db, StPlan *p, char *err, size_t errlen) {
  for (int i = 0; i < p->ntasks; i++)
    if ((p->tasks[i].run_id = find_run(db, &p->tasks[i], p, &p->tasks[i].no_health, err,
                                       errlen)) < 0)
      return -1;
  if (exec(db, "BEGIN IMMEDIATE", err, errlen))
    return -1;
  sqlite3_stmt *st = prepare(db, "DELETE FROM study_runs WHERE study = ?1", err, errlen);
  int rc = st ? 0 : -1;
  if (st) {
    sqlite3_bind_text(st, 1, p->s->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(db, "study_runs", err, errlen);
    sqlite3_finalize(st);
  }
  for (int i = 0; !rc && i < p->ntasks; i++)
    if (p->tasks[i].run_id > 0 && p->tasks[i].wanted)
      rc = add_members(db, p, i, err, errlen);
  if (rc || exec(db, "COMMIT", err, errlen)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
  }
  return 0;
}

int st_db_final_loss(sqlite3 *db, long long id, int val, double *loss, char *err,
                     size_t errlen) {
  sqlite3_stmt *st = prepare(db, val ? "SELECT status = 'finished', val_loss FROM runs WHERE "
                                       "id = ?1" : "SELECT status = 'finished', test_loss FROM "
                                       "runs WHERE id = ?1", err, errlen);
  if (!st)
    return -1;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : db_fail(db, "reading a run's loss", err, errlen);
  if (!rc)
    *loss = sqlite3_column_int(st, 0) ? sqlite3_column_double(st, 1) : INFINITY;
  sqlite3_finalize(st);
  return rc;
}

/* The experiment's model as recorded: its JSON with the run's seed. */
static char *model_json(const StExperiment *e, uint64_t seed) {
  json_t *o = json_loads(e->json, 0, NULL);
  json_object_set_new(o, "seed", json_integer((json_int_t)seed));
  char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
  return s;
}

/* Binds a double, or NULL when there is none. */
static void bind_real(sqlite3_stmt *st, int i, int have, double v) {
  if (have)
    sqlite3_bind_double(st, i, v);
  else
    sqlite3_bind_null(st, i);
}

/* Binds an integer, or NULL when there is none. */
static void bind_int(sqlite3_stmt *st, int i, int have, long long v) {
  if (have)
    sqlite3_bind_int64(st, i, v);
  else
    sqlite3_bind_null(st, i);
}

/* Binds which code trained r, and where gcc's took over, from column i. */
static void bind_code(sqlite3_stmt *st, int i, const StResult *r) {
  const RtWhere *w = &r->gcc_from;
  int both = r->ran == TIER_RAN_BOTH;
  sqlite3_bind_text(st, i, tier_ran_names[r->ran], -1, SQLITE_STATIC);
  bind_int(st, i + 1, both, w->epoch);
  bind_int(st, i + 2, both && w->step, w->step);
  bind_int(st, i + 3, both && !w->step, w->batch);
}

const RtEpoch *st_final_epoch(const StResult *r) {
  const RtEpoch *last = r->nepochs ? &r->epochs[r->nepochs - 1] : NULL;
  int best = last ? last->best_epoch : 0;
  return best >= 1 && best <= r->nepochs ? &r->epochs[best - 1] : last;
}

/* Inserts the runs row; sets *id (0 if another process has it). */
static int insert_run(sqlite3 *db, const StPlan *p, const StTask *t, const StResult *r,
                      long long *id, char *err, size_t errlen) {
  const StExperiment *e = &p->s->exp[t->exp];
  sqlite3_stmt *st = prepare(db,
    "INSERT INTO runs (code_hash, seed, data_hash, settings, model, name, data, data_dir, "
    "mlpc_version, backend, status, epochs, diverged_epoch, diverged_step, train_loss, "
    "test_loss, test_acc, seconds, val_loss, val_acc, best_epoch, code, gcc_epoch, gcc_step, "
    "gcc_test_batch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
    "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25) ON CONFLICT DO NOTHING", err, errlen);
  if (!st)
    return -1;
  char *model = model_json(e, t->seed);
  int div = r->diverged_epoch > 0, fin = !div && r->nepochs > 0;
  const RtEpoch *last = st_final_epoch(r);
  sqlite3_bind_text(st, 1, p->codes[t->code].hash.hex, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)t->seed);
  bind_texts(st, 3, (const char *[]){t->data_hash.hex, t->settings, model, e->model.name,
                                    e->model.data, t->data_dir, MLPC_VERSION,
                                    backend_names[p->backend],
                                    div ? "diverged" : "finished", NULL});
  sqlite3_bind_int(st, 12, r->nepochs);
  bind_int(st, 13, div, r->diverged_epoch);
  bind_int(st, 14, div, r->diverged_step);
  bind_real(st, 15, fin && !isnan(last->train_loss), fin ? last->train_loss : 0);
  bind_real(st, 16, fin, fin ? last->test_loss : 0);
  bind_real(st, 17, fin, fin ? last->test_acc : 0);
  sqlite3_bind_double(st, 18, r->seconds);
  bind_real(st, 19, fin && !isnan(last->val_loss), fin ? last->val_loss : 0);
  bind_real(st, 20, fin && !isnan(last->val_acc), fin ? last->val_acc : 0);
  bind_int(st, 21, fin && last->best_epoch, fin ? last->best_epoch : 0);
  bind_code(st, 22, r);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(db, "recording a run", err, errlen);
  *id = !rc && sqlite3_changes(db) ? sqlite3_last_insert_rowid(db) : 0;
  sqlite3_finalize(st);
  free(model);
  return rc;
}

/* Inserts the epochs rows of run id. */
static int insert_epochs(sqlite3 *db, long long id, const StResult *r, char *err,
                         size_t errlen) {
  sqlite3_stmt *st = prepare(db, "INSERT INTO epochs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                             err, errlen);
  int rc = st ? 0 : -1;
  for (int i = 0; !rc && i < r->nepochs; i++) {
    const RtEpoch *e = &r->epochs[i];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, e->epoch);
    bind_real(st, 3, !isnan(e->train_loss), e->train_loss);  /* NULL: no step */
    sqlite3_bind_double(st, 4, e->test_loss);
    sqlite3_bind_double(st, 5, e->test_acc);
    sqlite3_bind_double(st, 6, e->seconds);
    bind_real(st, 7, !isnan(e->val_loss), e->val_loss);  /* NULL: no validation split */
    bind_real(st, 8, !isnan(e->val_acc), e->val_acc);
    if (sqlite3_step(st) != SQLITE_DONE)
      rc = db_fail(db, "recording an epoch", err, errlen);
  }
  sqlite3_finalize(st);
  return rc;
}

/* Inserts the health rows of run id: every figure of every probe. */
static int insert_health(sqlite3 *db, long long id, const StResult *r, char *err,
                         size_t errlen) {
  sqlite3_stmt *st = prepare(db, "INSERT INTO health VALUES (?1, ?2, ?3, ?4, ?5, ?6)", err,
                             errlen);
  int rc = st ? 0 : -1;
  for (int e = 0; !rc && e < r->nprobes; e++)
    for (int i = 0; !rc && i < r->nhealth; i++) {
      const StHealthValue *v = &r->health[(size_t)e * r->nhealth + i];
      sqlite3_reset(st);
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int(st, 2, e);
      bind_texts(st, 3, (const char *[]){r->hnames[i].layer, r->hnames[i].figure, NULL});
      bind_real(st, 5, !v->na, v->value);  /* SQLite stores NaN as NULL too */
      sqlite3_bind_int(st, 6, v->na != 0);
      if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(db, "recording a health figure", err, errlen);
    }
  sqlite3_finalize(st);
  return rc;
}

/* Whether column i of the row holds v: NULL for NaN (no number). */
static int same_real(sqlite3_stmt *st, int i, double v) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? isnan(v)
                                                   : sqlite3_column_double(st, i) == v;
}

/* Whether run id, as recorded, has r's status and figures bit for bit:
   0 if so, 1 if not (err says where), -1 on error. */
static int same_run(sqlite3 *db, long long id, const StResult *r, char *err, size_t errlen) {
  sqlite3_stmt *st = prepare(db, "SELECT epochs, coalesce(diverged_epoch, 0), "
                                 "coalesce(diverged_step, 0) FROM runs WHERE id = ?1", err,
                             errlen);
  if (!st)
    return -1;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : db_fail(db, "reading a run", err, errlen);
  if (!rc && (sqlite3_column_int(st, 0) != r->nepochs ||
              sqlite3_column_int(st, 1) != r->diverged_epoch ||
              sqlite3_column_int64(st, 2) != r->diverged_step))
    rc = 1, snprintf(err, errlen, "its epochs or where it diverged differ");
  sqlite3_finalize(st);
  if (rc || !(st = prepare(db, "SELECT epoch, train_loss, test_loss, test_acc FROM epochs "
                               "WHERE run_id = ?1 ORDER BY epoch", err, errlen)))
    return st ? rc : -1;
  sqlite3_bind_int64(st, 1, id);
  for (int i = 0; !rc && i < r->nepochs; i++) {
    const RtEpoch *e = &r->epochs[i];
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != e->epoch ||
        !same_real(st, 1, e->train_loss) ||
        sqlite3_column_double(st, 2) != e->test_loss ||
        sqlite3_column_double(st, 3) != e->test_acc)
      rc = 1, snprintf(err, errlen, "epoch %d's figures differ", e->epoch);
  }
  sqlite3_finalize(st);
  return rc;
}

/* For a run recorded without health figures: adds r's, if r repeats it;
   else 1 with a warning in err. */
static int add_health(sqlite3 *db, long long id, const StResult *r, char *err,
                      size_t errlen) {
  char why[256];
  int rc = same_run(db, id, r, why, sizeof why);
  if (rc < 0)
    return snprintf(err, errlen, "%s", why), -1;
  if (rc)
    return snprintf(err, errlen, "run %lld, recorded without health figures, did not repeat "
                    "bit for bit when run again (%s); it is kept as recorded, without "
                    "health figures", id, why), 1;
  return insert_health(db, id, r, err, errlen);
}

int st_db_put(sqlite3 *db, StPlan *p, int task, const StResult *r, char *err,
              size_t errlen) {
  StTask *t = &p->tasks[task];
  long long id = 0;
  int no_health = 0, warn = 0;
  char warning[1024] = "";
  if (exec(db, "BEGIN IMMEDIATE", err, errlen))
    return -1;
  int rc = insert_run(db, p, t, r, &id, err, errlen);
  if (!rc && id && !(rc = insert_epochs(db, id, r, err, errlen)))
    rc = insert_health(db, id, r, err, errlen);
  if (!rc && !id)
    rc = (id = find_run(db, t, p, &no_health, err, errlen)) > 0 ? 0 : -1;
  if (!rc && no_health && (rc = add_health(db, id, r, warning, sizeof warning)) > 0)
    warn = 1, rc = 0;
  else if (rc && warning[0])
    snprintf(err, errlen, "%s", warning);
  t->run_id = id;
  t->no_health = 0;  /* done with, whether or not its figures could be added */
  if (!rc)
    rc = add_members(db, p, task, err, errlen);
  if (rc || exec(db, "COMMIT", err, errlen)) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    t->run_id = 0;
    return -1;
  }
  if (warn)
    snprintf(err, errlen, "%s", warning);
  return warn;
}
