/*
 * replay.c — main() for a fuzz harness built without libFuzzer: runs
 * every file named, or every file in every directory named, through
 * LLVMFuzzerTestOneInput once. ctest replays the corpora with it, under
 * the sanitizers in the sanitized build; `make fuzz` links the same
 * harnesses with libFuzzer instead (scripts/fuzz.sh).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Runs one file through the harness; -1 if it cannot be read. */
static int replay(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  size_t cap = 1 << 16, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
    if ((n += got) == cap)
      buf = realloc(buf, cap *= 2);
  fclose(f);
  if (!buf)
    return -1;
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

/* Orders names for qsort, so that runs are repeatable. */
static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file in dir, in name order; how many, or -1. */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **names = NULL, path[4096];
  int n = 0, done = 0;
  if (!d)
    return -1;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') {
      names = realloc(names, (n + 1) * sizeof *names);
      names[n++] = strdup(e->d_name);
    }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  for (int i = 0; i < n; i++) {
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && replay(path) == 0)
      done++;
    free(names[i]);
  }
  free(names);
  return done;
}

int main(int argc, char **argv) {
  int total = 0;
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    int n = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode) ? replay_dir(argv[i])
                                                          : replay(argv[i]) == 0;
    if (n < 0) {
      fprintf(stderr, "%s: cannot read\n", argv[i]);
      return 1;
    }
    total += n;
  }
  printf("%s: %d inputs replayed\n", argv[0], total);
  return total > 0 ? 0 : 1;
}
