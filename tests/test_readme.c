/*
 * test_readme.c — the commands the documentation shows run as written.
 *
 * Every indented block of README.md and docs/health.md whose first word
 * is a program (build/mlpc, ./trainer, cc, head, ...: on PATH, or a path
 * that exists once the commands before it ran) is run verbatim by
 * `bash -e -o pipefail`, block after block in one scratch directory that
 * holds copies of models/ and examples/ and links to data/ and the build
 * directory, so that what the commands write lands there. A block fails
 * the test when it exits non-zero or says "warning" (a README command
 * should build cleanly); when the text after it begins "prints `X`", its
 * output must hold X. Other blocks (the layout, sample output) are prose.
 *
 * Skipped, each with its reason (and a skip that matches no block fails,
 * so the list cannot go stale): `make run`, `make test` and `make check`,
 * and the whole seed study. The other docs' commands hold placeholders (MODEL.json,
 * F.c, N) or need a study or a cluster first, so they are not run here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "util.h"

static const char *const documents[] = {"README.md", "docs/health.md", NULL};

/* Blocks not run, by the start of their first line, and why. */
static const struct {
  const char *start, *reason;
} skips[] = {
  {"make run", "set-up, build and data (which may install packages), then the run the "
               "next block makes, and every test, this one included"},
  {"make check", "every test again in a second, sanitized build: minutes of both cores"},
  {"build/mlpc models/seed_study.json --run", "a whole study: 30 runs of 10 epochs on "
   "Fashion-MNIST, about 20 s of both cores; test_study_run runs studies end to end"},
};
enum { NSKIPS = sizeof skips / sizeof skips[0] };

static char dir[64];        /* the scratch directory */
static int skip_used[NSKIPS];

/* A path in the scratch directory. */
static const char *in_dir(const char *name) {
  static char buf[4][300];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

/* Whether word names a program: a path that exists in the scratch
   directory, or a name found on PATH. */
static int is_program(const char *word) {
  char path[4096];
  if (strchr(word, '/'))
    return snprintf(path, sizeof path, "%s/%s", dir, word), access(path, F_OK) == 0;
  for (const char *p = getenv("PATH"); p && *p;) {
    size_t n = strcspn(p, ":");
    snprintf(path, sizeof path, "%.*s/%s", (int)n, p, word);
    if (*word && access(path, X_OK) == 0)
      return 1;
    p += n + (p[n] == ':');
  }
  return 0;
}

/* The skip entry for a block starting with line, or -1. */
static int skip_of(const char *line) {
  for (int i = 0; i < NSKIPS; i++)
    if (!strncmp(line, skips[i].start, strlen(skips[i].start)))
      return i;
  return -1;
}

/* Fails unless the block's output holds what the text after it says it
   prints ("prints `X`"). */
static void check_prints(const char *after, const char *where) {
  if (strncmp(after, "prints `", 8))
    return;
  size_t len, n = strcspn(after + 8, "`");
  char *out = util_slurp(in_dir("stdout"), &len);
  char want[256];
  snprintf(want, sizeof want, "%.*s", (int)n, after + 8);
  if (!out || !strstr(out, want))
    fail_msg("%s: the text says it prints '%s'; it printed:\n%s", where, want, out);
  free(out);
}

/* Runs one block of commands in the scratch directory. */
static void run_block(const char *script, const char *after, const char *where) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd '%s' && %s", dir, script);
  const char *argv[] = {"bash", "-e", "-o", "pipefail", "-c", cmd, NULL};
  int status = util_run(argv, in_dir("stdout"), in_dir("stderr"));
  size_t len;
  char *err = util_slurp(in_dir("stderr"), &len);
  if (status)
    fail_msg("%s: exit status %d:\n%s\n%s", where, status, script, err);
  if (err && strstr(err, "warning"))
    fail_msg("%s: a warning:\n%s\n%s", where, script, err);
  print_message("  %s: ok\n", where);
  free(err);
  check_prints(after, where);
}

/* The block starting at line *i of lines (4-space indented, after a blank
   line), dedented into buf; *i moves past it. */
static void take_block(char **lines, int n, int *i, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = 0;
  for (; *i < n && (!strncmp(lines[*i], "    ", 4) || !*lines[*i]); ++*i)
    used += snprintf(buf + used, used < len ? len - used : 0, "%s\n",
                     *lines[*i] ? lines[*i] + 4 : "");
}

/* Runs every command block of one document. */
static void run_document(const char *doc) {
  size_t len;
  char *text = util_slurp(doc, &len), *lines[4096], block[8192], where[128];
  int n = 0, fenced = 0;
  assert_non_null(text);
  for (char *l = text; *l && n < 4096; l += strlen(l) + 1) {
    lines[n++] = l;
    l[strcspn(l, "\n")] = 0;
  }
  for (int i = 0; i < n; i++) {
    fenced ^= !strncmp(lines[i], "```", 3);
    if (fenced || strncmp(lines[i], "    ", 4) || (i && strncmp(lines[i - 1], "    ", 4) &&
                                                   *lines[i - 1]))
      continue;
    char word[256];
    int at = i, skip = skip_of(lines[i] + 4);
    sscanf(lines[i] + 4, "%255s", word);
    take_block(lines, n, &i, block, sizeof block);
    snprintf(where, sizeof where, "%s:%d", doc, at + 1);
    if (skip >= 0)
      skip_used[skip] = 1, print_message("  %s: skipped: %s\n", where, skips[skip].reason);
    else if (is_program(word))
      run_block(block, i < n ? lines[i] : "", where);
    i--;
  }
  free(text);
}

/* Every document's commands, in order, in one scratch directory. */
static void test_commands(void **state) {
  (void)state;
  for (const char *const *d = documents; *d; d++)
    run_document(*d);
  for (int i = 0; i < NSKIPS; i++)
    if (!skip_used[i])
      fail_msg("no block starts with '%s': remove it from the skips", skips[i].start);
}

static int setup(void **state) {
  (void)state;
  char bin[4096];
  if (util_mkdtemp("readme", dir, sizeof dir))
    return -1;
  snprintf(bin, sizeof bin, "%s", MLPC_BIN);
  *strrchr(bin, '/') = 0;
  const char *cp[] = {"cp", "-R", "models", "examples", dir, NULL};
  return util_run(cp, NULL, NULL) || symlink(MLPC_SOURCE_DIR "/data", in_dir("data")) ||
         symlink(bin, in_dir("build")) ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(dir);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_commands)};
  return util_run_tests(tests, setup, teardown, argc, argv);
}
