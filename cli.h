/*
 * cli.h — the command line: every flag once, in one table, with what it
 * takes, what it is for and what it serves. main.c reads a model's flags
 * with it and study/driver.c a study's, so that both refuse the same
 * things with the same words: an unknown flag, a missing value, a flag
 * given twice, a flag for the other kind of file, a flag that serves no
 * action given, a path longer than the system takes.
 */
#ifndef MLPC_CLI_H
#define MLPC_CLI_H

#include <stddef.h>

/* What a flag is for: bits. CLI_PATH: its value is a path. */
enum { CLI_MODEL = 1, CLI_STUDY = 2, CLI_BOTH = 3, CLI_PATH = 4 };

/* The action flags a flag serves: it is an error unless one of them is
   given too (an action itself serves none, 0). */
#define CLI_S(f) (1u << FL_##f)
#define CLI_CODE (CLI_S(RUN) | CLI_S(EMIT) | CLI_S(EMIT_MODEL) | CLI_S(EMIT_INFERENCE) | \
                  CLI_S(DUMP_STUDY))
#define CLI_TRAIN (CLI_S(RUN) | CLI_S(EMIT) | CLI_S(DUMP_STUDY))

/* The flags: X(enum, flag, its value's name or NULL, for, serves, the
   model key it overrides or NULL). The actions come first. */
#define CLI_FLAGS(X)                                                                     \
  X(RUN,            "--run",            NULL,      CLI_BOTH, 0, NULL)                    \
  X(EMIT,           "--emit",           "FILE.c",  CLI_MODEL | CLI_PATH, 0, NULL)        \
  X(EMIT_MODEL,     "--emit-model",     "FILE.c",  CLI_MODEL | CLI_PATH, 0, NULL)        \
  X(EMIT_INFERENCE, "--emit-inference", "FILE.c",  CLI_MODEL | CLI_PATH, 0, NULL)        \
  X(DUMP_IR,        "--dump-ir",        NULL,      CLI_MODEL, 0, NULL)                   \
  X(DUMP_STUDY,     "--dump-study",     NULL,      CLI_STUDY, 0, NULL)                   \
  X(BACKEND,        "--backend",        "tcc|gcc", CLI_BOTH, CLI_S(RUN) | CLI_S(DUMP_STUDY), \
    NULL)                                                                                \
  X(EPOCHS,         "--epochs",         "N",       CLI_BOTH, CLI_TRAIN, "epochs")        \
  X(SEED,           "--seed",           "N",       CLI_MODEL, CLI_TRAIN, "seed")         \
  X(BATCH_SIZE,     "--batch-size",     "N",       CLI_MODEL, CLI_TRAIN | CLI_S(EMIT_MODEL), \
    "batch_size")                                                                        \
  X(LR,             "--lr",             "X",       CLI_MODEL, CLI_TRAIN | CLI_S(EMIT_MODEL), \
    "optimizer.lr")                                                                      \
  X(MAX_BATCHES,    "--max-batches",    "N",       CLI_BOTH, CLI_TRAIN, "max_batches")   \
  X(DATA,           "--data",           "DIR",     CLI_BOTH, CLI_TRAIN, "data")          \
  X(NO_SHUFFLE,     "--no-shuffle",     NULL,      CLI_BOTH, CLI_S(RUN), NULL)           \
  X(FMA,            "--fma",            NULL,      CLI_BOTH, CLI_CODE, NULL)             \
  X(STRICT,         "--strict",         NULL,      CLI_BOTH, CLI_CODE, NULL)             \
  X(JSON,           "--json",           NULL,      CLI_MODEL, CLI_S(RUN), NULL)          \
  X(HEALTH,         "--health",         NULL,      CLI_BOTH, CLI_S(RUN) | CLI_S(DUMP_STUDY), \
    NULL)                                                                                \
  X(LOAD_WEIGHTS,   "--load-weights",   "FILE",    CLI_MODEL | CLI_PATH,                 \
    CLI_S(RUN) | CLI_S(EMIT_INFERENCE), NULL)                                            \
  X(SAVE_WEIGHTS,   "--save-weights",   "FILE",    CLI_MODEL | CLI_PATH, CLI_S(RUN), NULL) \
  X(JOBS,           "--jobs",           "N",       CLI_STUDY, CLI_S(RUN), NULL)          \
  X(OUT,            "--out",            "DIR",     CLI_STUDY | CLI_PATH, CLI_S(RUN), NULL) \
  X(DB,             "--db",             "FILE",    CLI_STUDY | CLI_PATH, CLI_S(RUN), NULL)

#define CLI_ENUM_(e, ...) FL_##e,
enum { CLI_FLAGS(CLI_ENUM_) CLI_NFLAGS };
#undef CLI_ENUM_

/* The flags given: v[f] is flag f's value, or its own name for a flag
   without one; NULL when it is not given. */
typedef struct {
  const char *v[CLI_NFLAGS];
} CliArgs;

/* Whether a is a flag that takes a value (whose next argument is that
   value, not the model file). */
int cli_takes_value(const char *a);
/* Reads the flags of argv, all but file, for a model (kind CLI_MODEL) or
   a study (CLI_STUDY): each known, with its value, given once, for this
   kind of file, and serving an action given; --backend one of the
   backends; paths no longer than the system takes. 0, or -1 with the
   message ("FLAG: error: ...") in err. */
int cli_parse(int argc, char **argv, const char *file, int kind, CliArgs *a, char *err,
              size_t errlen);
/* The backend --backend names (mlpc.h), or -1 when it is not given. */
int cli_backend(const CliArgs *a);
/* The flag's name ("--emit"). */
const char *cli_name(int flag);
/* The model key the flag overrides ("optimizer.lr" for --lr), or NULL. */
const char *cli_key(int flag);
/* Whether paths a and b name one file: the same text, the same existing
   file (device and inode), or the same name in one directory (the
   directories compared by realpath). */
int cli_same_file(const char *a, const char *b);

#endif
