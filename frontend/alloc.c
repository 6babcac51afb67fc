/*
 * alloc.c — the one door through which the frontend and the code
 * generator allocate (Jansson's allocations too, by json_set_alloc_funcs).
 *
 * In use it is malloc, realloc and free. Our own callers get NULL when
 * memory runs out and report it. Jansson does not: Jansson 2.14 does not
 * survive every failed allocation (akheron/jansson#362: its lexer drops
 * the failure and then overruns a buffer, or asserts), so an allocation
 * of Jansson's that fails ends mlpc at once, with a message and exit 1.
 *
 * For tests it counts how many allocations were asked for since
 * fe_alloc_fail_at and how many blocks are still held, and it makes the
 * k-th allocation fail, so that a test can fail every allocation site in
 * turn and check that each gives a clean error and leaks nothing
 * (tests/test_faults.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <jansson.h>
#include "model.h"

static long calls;    /* allocations asked for since fe_alloc_fail_at    */
static long fail_at;  /* the one that fails, from 1; 0: none             */
static long live;     /* blocks held                                     */

/* Whether this allocation is the one to fail. */
static int injected(void) {
  return ++calls == fail_at;
}

void *fe_malloc(size_t n) {
  void *p = injected() ? NULL : malloc(n ? n : 1);
  live += p != NULL;
  return p;
}

void *fe_realloc(void *p, size_t n) {
  void *q = injected() ? NULL : realloc(p, n ? n : 1);
  live += q && !p;
  return q;
}

void fe_free(void *p) {
  live -= p != NULL;
  free(p);
}

void fe_alloc_fail_at(long k) {
  calls = 0;
  fail_at = k;
}

long fe_alloc_calls(void) { return calls; }

long fe_alloc_live(void) { return live; }

/* Jansson's malloc: fe_malloc, or the end of mlpc. */
static void *json_alloc(size_t n) {
  void *p = fe_malloc(n);
  if (!p) {
    fputs("mlpc: error: out of memory (reading JSON)\n", stderr);
    fflush(NULL);
    _exit(1); /* at once: nothing of Jansson's runs again */
  }
  return p;
}

void fe_alloc_json(void) {
  json_set_alloc_funcs(json_alloc, fe_free);
}
