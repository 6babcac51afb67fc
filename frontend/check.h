/*
 * check.h — the kit that checks JSON files: what the frontend (model
 * files) and study/ (study files) both use to read a file, write a
 * message, show a value and suggest a name, so that both say the same
 * things the same way. study/ may include this; the frontend never
 * includes study/.
 */
#ifndef MLPC_CHECK_H
#define MLPC_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <jansson.h>

/* Bytes in a model or study file at most. */
#define FE_MAX_FILE (1L << 20)

/* What a valid name is made of (fe_valid_name), for messages. */
#define FE_NAME_RULE "1 to 63 characters from A-Z a-z 0-9 _ . -"

/* Copies s into dst (size bytes), control bytes as \xNN, cut with "..."
   between characters if long; returns dst. */
const char *fe_printable(char *dst, size_t size, const char *s);

/* Writes "FILE: PATH: error: MSG" (or "FILE: error: MSG" when path is
   NULL or empty) to err; returns -1. */
int fe_vmessage(char *err, size_t errlen, const char *file, const char *path,
                const char *fmt, va_list ap);

/* Writes Jansson's parse error as "FILE:LINE:COL: error: MSG"; -1. */
int fe_syntax_error(char *err, size_t errlen, const char *file, const json_error_t *je);

/* The name of names[0..n) closest to word: one or two edits away (one for
   names of at most 4 bytes; case ignored, a swap of neighbours one edit),
   or else one that word (3 bytes or more) begins; NULL when none is. */
const char *fe_closest(const char *word, const char *const *names, int n);

/* Writes names as "a, b, c". */
void fe_join(char *buf, size_t size, const char *const *names, int n);

/* Writes "unknown WHAT 'WORD' (did you mean 'NAME'?); expected one of
   LIST" (without the suggestion when none is close); 1 if there was one. */
int fe_unknown(char *buf, size_t size, const char *what, const char *word,
               const char *const *names, int n);

/* Whether s is a valid name (FE_NAME_RULE). */
int fe_valid_name(const char *s);

/* Writes what a file is named after by default: its base name without
   ".json" ("models/a.json" → "a"). */
void fe_file_stem(char *buf, size_t size, const char *file);

/* Reads the whole file at path, at most FE_MAX_FILE bytes, into *text
   (NUL-terminated, from fe_malloc; fe_free it) and its length into *len:
   0; or -1, or FE_NO_MEMORY, with why in why ("cannot open: ...", or
   "cannot open 'PATH': ..." when named; what is the kind of file, as in
   "too large for a model file"). */
int fe_read_file(const char *path, int named, const char *what, char **text, size_t *len,
                 char *why, size_t size);

#endif
