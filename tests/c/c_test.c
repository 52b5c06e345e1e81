/*
 * C tests of the libbitcask ABI, in named phases (after LevelDB's c_test.c).
 * Usage: c_test [WORKDIR]. Every database lives under WORKDIR, removed first.
 * Built twice by `make c-test` (shared and static library) and run under valgrind
 * by `make c-valgrind`.
 */
#define _POSIX_C_SOURCE 200809L
#include "bitcask.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *phase = "";
static int phases_passed = 0;
static char workdir[1024];

static void start_phase(const char *name) {
  if (*phase) phases_passed++;
  phase = name;
  fprintf(stderr, "=== Test %s\n", name);
}

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: phase %s: check failed: %s\n", __FILE__,     \
              __LINE__, phase, #cond);                                      \
      fprintf(stderr, "c_test: %d passed, 1 failed\n", phases_passed);     \
      exit(1);                                                              \
    }                                                                       \
  } while (0)

#define CHECK_STATUS(expr, want)                                              \
  do {                                                                        \
    bitcask_status_t got_ = (expr);                                           \
    if (got_ != (want)) {                                                     \
      fprintf(stderr, "%s:%d: phase %s: %s returned %d (%s), want %s: %s\n", \
              __FILE__, __LINE__, phase, #expr, (int)got_,                    \
              bitcask_strerror(got_), #want, bitcask_last_error_message());  \
      fprintf(stderr, "c_test: %d passed, 1 failed\n", phases_passed);       \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, BITCASK_OK)

#define S(str) (const uint8_t *)(str), strlen(str)

static void path_of(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", workdir, name);
}

static void remove_tree(const char *path) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  CHECK(system(cmd) == 0);
}

static int contains(const char *haystack, const char *needle) {
  return strstr(haystack, needle) != NULL;
}

/* Checks that `key` holds `want` (a C string) through both get functions. */
static void check_get(bitcask_t *db, const char *key, const char *want) {
  uint8_t buf[256];
  size_t len = 0;
  CHECK_OK(bitcask_get(db, S(key), buf, sizeof buf, &len));
  CHECK(len == strlen(want));
  CHECK(memcmp(buf, want, len) == 0);

  uint8_t *v = NULL;
  size_t vlen = 0;
  CHECK_OK(bitcask_get_alloc(db, S(key), &v, &vlen));
  CHECK(v != NULL);
  CHECK(vlen == strlen(want));
  CHECK(memcmp(v, want, vlen) == 0);
  bitcask_free(v);
}

static void check_missing(bitcask_t *db, const char *key) {
  uint8_t buf[16] = "untouched";
  size_t len = 777;
  CHECK_STATUS(bitcask_get(db, S(key), buf, sizeof buf, &len), BITCASK_NOT_FOUND);
  CHECK(len == 777);
  CHECK(strcmp((char *)buf, "untouched") == 0);
  uint8_t *v = (uint8_t *)buf;
  CHECK_STATUS(bitcask_get_alloc(db, S(key), &v, &len), BITCASK_NOT_FOUND);
  CHECK(v == buf && len == 777);
  CHECK_STATUS(bitcask_contains(db, S(key)), BITCASK_NOT_FOUND);
}

/* The iterator's current key as a C string in `out`. */
static const char *cur_key(bitcask_iterator_t *it, char *out, size_t n) {
  const uint8_t *k = NULL;
  size_t klen = 0;
  CHECK(bitcask_iter_valid(it));
  CHECK_OK(bitcask_iter_key(it, &k, &klen));
  CHECK(klen < n);
  memcpy(out, k, klen);
  out[klen] = 0;
  return out;
}

/* Walks `it` to its end and checks the keys it visits, space-separated. */
static void check_walk(bitcask_iterator_t *it, const char *want) {
  char seen[512] = "";
  char key[128];
  while (bitcask_iter_valid(it)) {
    if (*seen) strcat(seen, " ");
    strcat(seen, cur_key(it, key, sizeof key));
    CHECK_OK(bitcask_iter_next(it));
  }
  if (strcmp(seen, want) != 0) {
    fprintf(stderr, "walk saw \"%s\", want \"%s\"\n", seen, want);
    CHECK(0);
  }
}

static void check_at(bitcask_iterator_t *it, const char *want) {
  char key[128];
  CHECK(strcmp(cur_key(it, key, sizeof key), want) == 0);
}

static uint64_t stat_of(bitcask_t *db, bitcask_stat_t which) {
  uint64_t v = 0;
  CHECK_OK(bitcask_stat(db, which, &v));
  return v;
}

/* Checks that no merge failure is reported: the counter is 0 and
 * bitcask_last_merge_error says NOT_FOUND, writing nothing. */
/* A closed database in `name` (its path in `p`) holding a = "aaaa", b = "bbbb",
 * in 0000000001.data, with the hint a clean close leaves. */
static void two_records(char *p, size_t n, const char *name) {
  bitcask_t *db = NULL;
  path_of(p, n, name);
  CHECK_OK(bitcask_open(p, NULL, &db));
  CHECK_OK(bitcask_put(db, S("a"), S("aaaa")));
  CHECK_OK(bitcask_put(db, S("b"), S("bbbb")));
  CHECK_OK(bitcask_close(db));
  bitcask_destroy(db);
}

static void check_no_merge_error(bitcask_t *db) {
  CHECK(stat_of(db, BITCASK_STAT_MERGE_FAILURES) == 0);
  bitcask_status_t code = BITCASK_PANIC;
  char *msg = (char *)"untouched";
  int os_error = -1;
  CHECK_STATUS(bitcask_last_merge_error(db, &code, &msg, &os_error), BITCASK_NOT_FOUND);
  CHECK(code == BITCASK_PANIC);
  CHECK(strcmp(msg, "untouched") == 0);
  CHECK(os_error == -1);
}

static int file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  fclose(f);
  return 1;
}

/* Flips one byte in the middle of the first occurrence of `needle` in the file
 * `path`. */
static void flip_byte_of(const char *path, const char *needle) {
  static char data[1 << 16];
  FILE *f = fopen(path, "r+b");
  CHECK(f != NULL);
  size_t n = fread(data, 1, sizeof data, f);
  CHECK(n > 0 && n < sizeof data);
  size_t nlen = strlen(needle);
  long at = -1;
  for (size_t i = 0; i + nlen <= n; i++) {
    if (memcmp(data + i, needle, nlen) == 0) {
      at = (long)i;
      break;
    }
  }
  CHECK(at >= 0);
  at += (long)(nlen / 2);
  CHECK(fseek(f, at, SEEK_SET) == 0);
  CHECK(fputc(data[at] ^ 0x20, f) != EOF);
  CHECK(fclose(f) == 0);
}

/* The milliseconds bitcask_ttl reports for `key`, which must expire. */
static uint64_t ttl_of(bitcask_t *db, const char *key) {
  uint64_t ms = 0;
  CHECK_OK(bitcask_ttl(db, S(key), &ms));
  return ms;
}

/* Checks that `key` has a value that never expires. */
static void check_no_expiry(bitcask_t *db, const char *key) {
  uint64_t ms = 0;
  CHECK_STATUS(bitcask_ttl(db, S(key), &ms), BITCASK_NO_EXPIRY);
  CHECK(ms == UINT64_MAX);
}

/* Checks that `key` reads as absent through get, contains and ttl. */
static void check_expired(bitcask_t *db, const char *key) {
  check_missing(db, key);
  uint64_t ms = 777;
  CHECK_STATUS(bitcask_ttl(db, S(key), &ms), BITCASK_NOT_FOUND);
  CHECK(ms == 777);
}

/* Checks that a key written with a TTL of `ttl_ms` a moment ago has between
 * ttl_ms - 60 s (a slow run) and ttl_ms + 1 s (expiry rounds up to the second)
 * left. */
static void check_ttl_about(bitcask_t *db, const char *key, uint64_t ttl_ms) {
  uint64_t ms = ttl_of(db, key);
  if (ms + 60000 < ttl_ms || ms > ttl_ms + 1000) {
    fprintf(stderr, "ttl of %s is %llu ms, want about %llu\n", key,
            (unsigned long long)ms, (unsigned long long)ttl_ms);
    CHECK(0);
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) CHECK(errno == EINTR);
}

struct thread_arg {
  bitcask_t *db;
  int id;
};

static void *writer_thread(void *p) {
  struct thread_arg *a = p;
  for (int i = 0; i < 100; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "thread%d:%03d", a->id, i);
    snprintf(val, sizeof val, "v%d", i);
    if (bitcask_put(a->db, S(key), S(val)) != BITCASK_OK) return (void *)1;
    uint8_t buf[32];
    size_t len;
    if (bitcask_get(a->db, S(key), buf, sizeof buf, &len) != BITCASK_OK) return (void *)1;
    if (len != strlen(val) || memcmp(buf, val, len) != 0) return (void *)1;
  }
  return NULL;
}

/* Readers and writers that keep going while another thread closes the handle:
 * each call returns OK or BITCASK_CLOSED, never crashes. */
static void *busy_thread(void *p) {
  bitcask_t *db = p;
  for (int i = 0; i < 2000; i++) {
    char key[32];
    snprintf(key, sizeof key, "busy%03d", i % 50);
    bitcask_status_t s = bitcask_put(db, S(key), S("v"));
    if (s != BITCASK_OK && s != BITCASK_CLOSED) return (void *)1;
    uint8_t buf[8];
    size_t len;
    s = bitcask_get(db, S(key), buf, sizeof buf, &len);
    if (s != BITCASK_OK && s != BITCASK_CLOSED && s != BITCASK_NOT_FOUND) return (void *)1;
    s = bitcask_close(db);
    if (s != BITCASK_OK) return (void *)1;
  }
  return NULL;
}

/* Open progress: every call recorded, in order. */
struct progress_log {
  int calls;
  bitcask_progress_t seen[64];
};

static void record_progress(const bitcask_progress_t *p, void *user_data) {
  struct progress_log *log = user_data;
  if (log->calls < 64) log->seen[log->calls] = *p;
  log->calls++;
}

/* Events as a listener saw them, from whatever thread called it. */
struct event_log {
  pthread_mutex_t mu;
  int count;
  bitcask_event_kind_t kind[16];
  char name[16][32];
  char file[16][1100];
  uint64_t offset[16], bytes[16], duration_us[16];
  bitcask_status_t error[16];
};

static void record_event(const bitcask_event_t *e, void *user_data) {
  struct event_log *log = user_data;
  pthread_mutex_lock(&log->mu);
  int i = log->count;
  if (i < 16) {
    log->kind[i] = e->kind;
    snprintf(log->name[i], sizeof log->name[i], "%s", e->name);
    snprintf(log->file[i], sizeof log->file[i], "%s", e->file ? e->file : "");
    log->offset[i] = e->offset;
    log->bytes[i] = e->bytes;
    log->duration_us[i] = e->duration_us;
    log->error[i] = e->error;
    log->count++;
  }
  pthread_mutex_unlock(&log->mu);
}

/* The index of the first event of `kind`, waiting up to 10 s (events are
 * delivered by the database's background thread). */
static int wait_event(struct event_log *log, bitcask_event_kind_t kind) {
  for (int tries = 0; tries < 2000; tries++) {
    pthread_mutex_lock(&log->mu);
    for (int i = 0; i < log->count; i++) {
      if (log->kind[i] == kind) {
        pthread_mutex_unlock(&log->mu);
        return i;
      }
    }
    pthread_mutex_unlock(&log->mu);
    sleep_ms(5);
  }
  CHECK(0);
  return -1;
}

int main(int argc, char **argv) {
  snprintf(workdir, sizeof workdir, "%s",
           argc > 1 ? argv[1] : "/tmp/bitcask-c-test");
  remove_tree(workdir);
  char dbpath[1100];
  path_of(dbpath, sizeof dbpath, "db");

  bitcask_t *db = NULL;
  bitcask_options_t *opts = NULL;

  start_phase("version");
  {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", BITCASK_VERSION_MAJOR,
             BITCASK_VERSION_MINOR, BITCASK_VERSION_PATCH);
    CHECK(strcmp(bitcask_version(), want) == 0);
    CHECK(bitcask_format_version() >= 1);
    CHECK(strcmp(bitcask_strerror(BITCASK_OK), "ok") == 0);
    CHECK(strcmp(bitcask_strerror(BITCASK_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(bitcask_strerror(-5), "unknown status") == 0);
    CHECK(strcmp(bitcask_strerror(9999), "unknown status") == 0);
    CHECK(strcmp(bitcask_last_error_message(), "") == 0);
  }

  start_phase("open");
  CHECK_OK(bitcask_options_create(&opts));
  CHECK_OK(bitcask_options_set_max_file_size(opts, 4096));
  CHECK_OK(bitcask_options_set_max_value_size(opts, 1024));
  CHECK_OK(bitcask_options_set_sync(opts, BITCASK_SYNC_NEVER, 0));
  /* Merges only when the merge phase asks, so its counters are predictable. */
  CHECK_OK(bitcask_options_set_auto_merge(opts, false));
  CHECK_OK(bitcask_open(dbpath, opts, &db));
  CHECK(db != NULL);

  start_phase("put");
  CHECK_OK(bitcask_put(db, S("foo"), S("hello")));
  CHECK_OK(bitcask_put(db, S("bar"), S("world")));
  CHECK_OK(bitcask_put(db, S("foo"), S("hello again")));

  start_phase("get");
  check_get(db, "foo", "hello again");
  check_get(db, "bar", "world");
  CHECK_OK(bitcask_contains(db, S("foo")));
  {
    /* Too small: the size needed is reported and the buffer is untouched. */
    uint8_t small[4] = {'x', 'x', 'x', 'x'};
    size_t len = 0;
    CHECK_STATUS(bitcask_get(db, S("foo"), small, sizeof small, &len),
                 BITCASK_BUFFER_TOO_SMALL);
    CHECK(len == strlen("hello again"));
    CHECK(memcmp(small, "xxxx", 4) == 0);
    CHECK(contains(bitcask_last_error_message(), "does not fit"));
    len = 0;
    CHECK_STATUS(bitcask_get(db, S("foo"), NULL, 0, &len), BITCASK_BUFFER_TOO_SMALL);
    CHECK(len == strlen("hello again"));
    /* Exactly the right size fits. */
    uint8_t exact[11];
    CHECK_OK(bitcask_get(db, S("foo"), exact, sizeof exact, &len));
    CHECK(len == 11 && memcmp(exact, "hello again", 11) == 0);
  }

  start_phase("missing key");
  check_missing(db, "nope");

  start_phase("delete");
  CHECK_OK(bitcask_delete(db, S("bar")));
  check_missing(db, "bar");
  CHECK_OK(bitcask_delete(db, S("never-existed")));

  start_phase("empty value");
  {
    CHECK_OK(bitcask_put(db, S("empty"), NULL, 0));
    uint8_t buf[4];
    size_t len = 99;
    CHECK_OK(bitcask_get(db, S("empty"), buf, sizeof buf, &len));
    CHECK(len == 0);
    CHECK_OK(bitcask_get(db, S("empty"), NULL, 0, &len));
    CHECK(len == 0);
    uint8_t *v = NULL;
    CHECK_OK(bitcask_get_alloc(db, S("empty"), &v, &len));
    CHECK(v != NULL && len == 0);
    bitcask_free(v);
    CHECK_OK(bitcask_contains(db, S("empty")));
  }

  start_phase("batch");
  {
    bitcask_batch_t *b = NULL;
    size_t n = 99;
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_OK(bitcask_batch_count(b, &n));
    CHECK(n == 0);
    CHECK_OK(bitcask_batch_put(b, S("b1"), S("one")));
    CHECK_OK(bitcask_batch_put(b, S("b2"), S("two")));
    CHECK_OK(bitcask_batch_put(b, S("b3"), S("three")));
    CHECK_OK(bitcask_batch_delete(b, S("b2")));
    CHECK_OK(bitcask_batch_delete(b, S("foo")));
    CHECK_OK(bitcask_batch_count(b, &n));
    CHECK(n == 5);
    CHECK_OK(bitcask_write(db, b));
    check_get(db, "b1", "one");
    check_missing(db, "b2");
    check_get(db, "b3", "three");
    check_missing(db, "foo");

    uint64_t seq1 = 0, seq2 = 0;
    CHECK_OK(bitcask_batch_clear(b));
    CHECK_OK(bitcask_batch_count(b, &n));
    CHECK(n == 0);
    CHECK_OK(bitcask_batch_put(b, S("b4"), S("four")));
    CHECK_OK(bitcask_write_opt(db, b, true, &seq1));
    CHECK_OK(bitcask_write_opt(db, b, false, &seq2));
    CHECK(seq1 > 0 && seq2 == seq1 + 1);
    CHECK_OK(bitcask_write_opt(db, b, false, NULL));
    check_get(db, "b4", "four");

    /* A batch with one bad operation writes nothing. */
    CHECK_OK(bitcask_batch_clear(b));
    CHECK_OK(bitcask_batch_put(b, S("b5"), S("five")));
    CHECK_OK(bitcask_batch_put(b, NULL, 0, S("empty key")));
    CHECK_STATUS(bitcask_write(db, b), BITCASK_EMPTY_KEY);
    check_missing(db, "b5");
    bitcask_batch_destroy(b);
    CHECK_OK(bitcask_sync(db));
  }

  start_phase("iteration");
  {
    const char *keys[] = {"it:a", "it:b", "it:c", "it:d", "it:e"};
    for (int i = 0; i < 5; i++) {
      char val[16];
      snprintf(val, sizeof val, "val-%c", keys[i][3]);
      CHECK_OK(bitcask_put(db, S(keys[i]), S(val)));
    }
    CHECK_OK(bitcask_put(db, S("it"), S("outside")));
    CHECK_OK(bitcask_put(db, S("iu"), S("outside")));
    bitcask_iterator_t *it = NULL;

    /* forward and reverse over a prefix */
    CHECK_OK(bitcask_iter_create_prefix(db, S("it:"), false, &it));
    {
      const uint8_t *v = NULL;
      size_t vlen = 0;
      CHECK_OK(bitcask_iter_value(it, &v, &vlen));
      CHECK(vlen == 5 && memcmp(v, "val-a", 5) == 0);
    }
    check_walk(it, "it:a it:b it:c it:d it:e");
    CHECK(!bitcask_iter_valid(it));
    {
      const uint8_t *k = (const uint8_t *)"x";
      size_t klen = 7;
      CHECK_STATUS(bitcask_iter_key(it, &k, &klen), BITCASK_NOT_FOUND);
      CHECK(klen == 7);
      CHECK_STATUS(bitcask_iter_next(it), BITCASK_INVALID_ARGUMENT);
    }
    /* seek, clamped to the prefix */
    CHECK_OK(bitcask_iter_seek(it, S("it:c")));
    check_at(it, "it:c");
    CHECK_OK(bitcask_iter_seek(it, S("it:bb")));
    check_at(it, "it:c");
    CHECK_OK(bitcask_iter_seek(it, S("a")));
    check_at(it, "it:a");
    CHECK_OK(bitcask_iter_seek(it, S("zzz")));
    CHECK(!bitcask_iter_valid(it));
    /* prev, and switching direction both ways */
    CHECK_OK(bitcask_iter_seek(it, S("it:c")));
    CHECK_OK(bitcask_iter_prev(it));
    check_at(it, "it:b");
    CHECK_OK(bitcask_iter_next(it));
    check_at(it, "it:c");
    CHECK_OK(bitcask_iter_next(it));
    check_at(it, "it:d");
    CHECK_OK(bitcask_iter_prev(it));
    CHECK_OK(bitcask_iter_prev(it));
    CHECK_OK(bitcask_iter_prev(it));
    check_at(it, "it:a");
    CHECK_OK(bitcask_iter_prev(it));
    CHECK(!bitcask_iter_valid(it));
    CHECK_OK(bitcask_iter_seek_last(it));
    check_at(it, "it:e");
    CHECK_OK(bitcask_iter_prev(it));
    check_at(it, "it:d");
    CHECK_OK(bitcask_iter_seek_first(it));
    check_walk(it, "it:a it:b it:c it:d it:e");
    bitcask_iter_destroy(it);

    CHECK_OK(bitcask_iter_create_prefix(db, S("it:"), true, &it));
    check_walk(it, "it:e it:d it:c it:b it:a");
    CHECK_OK(bitcask_iter_seek(it, S("it:cc")));
    check_at(it, "it:c");
    CHECK_OK(bitcask_iter_seek(it, S("zzz")));
    check_at(it, "it:e");
    CHECK_OK(bitcask_iter_prev(it));
    CHECK(!bitcask_iter_valid(it));
    CHECK_OK(bitcask_iter_seek(it, S("it:b")));
    CHECK_OK(bitcask_iter_prev(it));
    check_at(it, "it:c");
    CHECK_OK(bitcask_iter_next(it));
    check_at(it, "it:b");
    bitcask_iter_destroy(it);

    /* range [it:b, it:d), both directions; an empty end means unbounded */
    CHECK_OK(bitcask_iter_create_range(db, S("it:b"), S("it:d"), false, &it));
    check_walk(it, "it:b it:c");
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_iter_create_range(db, S("it:b"), S("it:d"), true, &it));
    check_walk(it, "it:c it:b");
    CHECK_OK(bitcask_iter_seek(it, S("zzz")));
    check_at(it, "it:c");
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_iter_create_range(db, S("it:d"), NULL, 0, false, &it));
    check_walk(it, "it:d it:e iu");
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_iter_create_range(db, NULL, 0, S("b3"), false, &it));
    check_walk(it, "b1");
    bitcask_iter_destroy(it);
    /* NULL is no bound; the empty key is a bound like any other (nothing is
     * below it), the same in every binding. */
    CHECK_OK(bitcask_iter_create_range(db, S("it:d"), (const uint8_t *)"", 0, false, &it));
    CHECK(!bitcask_iter_valid(it));
    CHECK_STATUS(bitcask_iter_get_error(it), BITCASK_OK);
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_iter_create_range(db, (const uint8_t *)"", 0, S("b3"), false, &it));
    check_walk(it, "b1");
    bitcask_iter_destroy(it);

    /* the whole database, in both directions */
    uint64_t count = 0, seen = 0;
    CHECK_OK(bitcask_count(db, &count));
    CHECK_OK(bitcask_iter_create(db, false, &it));
    while (bitcask_iter_valid(it)) {
      seen++;
      CHECK_OK(bitcask_iter_next(it));
    }
    CHECK(seen == count);
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_iter_create(db, true, &it));
    check_at(it, "iu");
    bitcask_iter_destroy(it);
    bitcask_iter_destroy(NULL);
  }

  start_phase("stats");
  {
    uint64_t keys = 0, count = 0, files = 0, seq = 0;
    CHECK_OK(bitcask_count(db, &count));
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_KEYS, &keys));
    CHECK(keys == count && keys == 11);
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DATA_FILES, &files));
    CHECK(files >= 1);
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_LAST_SEQ, &seq));
    CHECK(seq > 0);
    uint64_t untouched = 42;
    CHECK_STATUS(bitcask_stat(db, 1000, &untouched), BITCASK_INVALID_ARGUMENT);
    CHECK(untouched == 42);

    /* Per-file space: ask the count, then fill; the files add up to the totals. */
    size_t n = 0;
    CHECK_STATUS(bitcask_file_stats(db, NULL, 0, &n), BITCASK_BUFFER_TOO_SMALL);
    CHECK(n == files);
    bitcask_file_stats_t fs[64];
    CHECK(n <= 64);
    size_t got = 0;
    CHECK_OK(bitcask_file_stats(db, fs, 64, &got));
    CHECK(got == n);
    uint64_t data = 0, dead = 0, sum = 0, sum_dead = 0;
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DATA_BYTES, &data));
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DEAD_BYTES, &dead));
    for (size_t i = 0; i < got; i++) {
      CHECK(fs[i].total_bytes == fs[i].live_bytes + fs[i].dead_bytes);
      CHECK(i == 0 || fs[i].id > fs[i - 1].id);
      sum += fs[i].total_bytes;
      sum_dead += fs[i].dead_bytes;
    }
    CHECK(sum == data && sum_dead == dead);
    CHECK_STATUS(bitcask_file_stats(db, NULL, 1, &got), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_file_stats(db, fs, 64, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_file_stats(NULL, fs, 64, &got), BITCASK_INVALID_ARGUMENT);
  }

  start_phase("threads");
  {
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
      args[i].db = db;
      args[i].id = i;
      CHECK(pthread_create(&th[i], NULL, writer_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
      void *ret = (void *)1;
      CHECK(pthread_join(th[i], &ret) == 0);
      CHECK(ret == NULL);
    }
    bitcask_iterator_t *it = NULL;
    uint64_t n = 0;
    CHECK_OK(bitcask_iter_create_prefix(db, S("thread"), false, &it));
    while (bitcask_iter_valid(it)) {
      n++;
      CHECK_OK(bitcask_iter_next(it));
    }
    CHECK(n == 400);
    bitcask_iter_destroy(it);
  }

  start_phase("merge");
  {
    uint64_t v = 12345, dead_before = 0, dead_after = 0, files = 0, reclaimed = 0;
    CHECK_STATUS(bitcask_stat(db, BITCASK_STAT_LAST_MERGE_FILES_IN, &v), BITCASK_NOT_FOUND);
    CHECK(v == 12345);
    CHECK(stat_of(db, BITCASK_STAT_MERGES) == 0);
    check_no_merge_error(db);
    /* Overwrite the same keys across several 4 KiB files to make dead bytes. */
    for (int round = 0; round < 10; round++) {
      for (int i = 0; i < 20; i++) {
        char key[32], val[64];
        snprintf(key, sizeof key, "merge:%02d", i);
        snprintf(val, sizeof val, "round %d of key %d, padded to make it longer", round, i);
        CHECK_OK(bitcask_put(db, S(key), S(val)));
      }
    }
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DEAD_BYTES, &dead_before));
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DATA_FILES, &files));
    CHECK(files > 2);
    CHECK_OK(bitcask_merge(db));
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_LAST_MERGE_FILES_IN, &v));
    CHECK(v >= 1);
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_LAST_MERGE_BYTES_RECLAIMED, &reclaimed));
    CHECK(reclaimed > 0);
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_LAST_MERGE_DURATION_US, &v));
    CHECK_OK(bitcask_stat(db, BITCASK_STAT_DEAD_BYTES, &dead_after));
    CHECK(dead_after < dead_before);
    CHECK(stat_of(db, BITCASK_STAT_MERGES) >= 1);
    check_no_merge_error(db);
    check_get(db, "merge:07", "round 9 of key 7, padded to make it longer");
    check_get(db, "b1", "one");
    check_get(db, "thread2:050", "v50");
    check_missing(db, "b2");
    CHECK_STATUS(bitcask_merge(NULL), BITCASK_INVALID_ARGUMENT);
  }

  start_phase("iterator: a value read after a merge removed its file");
  {
    /* held:* share their files with keys overwritten below, so the merge
     * rewrites those files and removes them while the iterator stands on
     * held:00; its value is read only when asked, from the file it held. */
    for (int i = 0; i < 10; i++) {
      char key[32], val[32];
      snprintf(key, sizeof key, "held:%02d", i);
      snprintf(val, sizeof val, "held value %d", i);
      CHECK_OK(bitcask_put(db, S(key), S(val)));
      CHECK_OK(bitcask_put(db, S("churn"), S("filler filler filler filler filler")));
    }
    for (int i = 0; i < 200; i++)
      CHECK_OK(bitcask_put(db, S("churn"), S("filler filler filler filler filler")));
    bitcask_iterator_t *it = NULL;
    CHECK_OK(bitcask_iter_create_prefix(db, S("held:"), false, &it));
    char k[64];
    CHECK(strcmp(cur_key(it, k, sizeof k), "held:00") == 0);
    uint64_t merges = stat_of(db, BITCASK_STAT_MERGES);
    CHECK_OK(bitcask_merge(db));
    CHECK(stat_of(db, BITCASK_STAT_MERGES) == merges + 1);
    const uint8_t *v;
    size_t vlen;
    CHECK_OK(bitcask_iter_value(it, &v, &vlen));
    CHECK(vlen == strlen("held value 0") && memcmp(v, "held value 0", vlen) == 0);
    /* Asked twice, the same bytes. */
    const uint8_t *v2;
    CHECK_OK(bitcask_iter_value(it, &v2, &vlen));
    CHECK(v2 == v);
    /* Keys alone: every step, no value asked. */
    int n = 0;
    while (bitcask_iter_valid(it)) {
      n++;
      CHECK_OK(bitcask_iter_next(it));
    }
    CHECK(n == 10);
    bitcask_iter_destroy(it);
    check_get(db, "held:09", "held value 9");
  }

  start_phase("open progress");
  {
    char p[1100];
    bitcask_options_t *o = NULL;
    bitcask_t *pdb = NULL;
    struct progress_log log = {0};
    path_of(p, sizeof p, "progress");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_max_file_size(o, 1024));
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    CHECK_OK(bitcask_open(p, o, &pdb));
    for (int i = 0; i < 60; i++) {
      char key[32];
      snprintf(key, sizeof key, "pr:%02d", i);
      CHECK_OK(bitcask_put(pdb, S(key), S("a value long enough to fill files soon")));
    }
    CHECK_OK(bitcask_close(pdb));
    bitcask_destroy(pdb);
    CHECK_STATUS(bitcask_options_set_open_progress(NULL, record_progress, &log),
                 BITCASK_INVALID_ARGUMENT);
    CHECK_OK(bitcask_options_set_open_progress(o, record_progress, &log));
    CHECK_OK(bitcask_open(p, o, &pdb));
    uint64_t files = stat_of(pdb, BITCASK_STAT_DATA_FILES);
    CHECK(files > 3 && files <= 64);
    CHECK(log.calls == (int)files);
    for (int i = 0; i < log.calls && i < 64; i++) {
      CHECK(log.seen[i].files_done == (uint64_t)i + 1);
      CHECK(log.seen[i].files_total == files);
      CHECK(log.seen[i].bytes_total == log.seen[0].bytes_total);
      CHECK(i == 0 || log.seen[i].bytes_done > log.seen[i - 1].bytes_done);
    }
    CHECK(log.seen[log.calls - 1].bytes_done == log.seen[0].bytes_total);
    check_get(pdb, "pr:59", "a value long enough to fill files soon");
    CHECK_OK(bitcask_close(pdb));
    bitcask_destroy(pdb);
    /* NULL removes the callback. */
    CHECK_OK(bitcask_options_set_open_progress(o, NULL, &log));
    log.calls = 0;
    CHECK_OK(bitcask_open(p, o, &pdb));
    CHECK(log.calls == 0);
    CHECK_OK(bitcask_close(pdb));
    bitcask_destroy(pdb);
    bitcask_options_destroy(o);
  }

  start_phase("merge failure");
  {
    char p[1100], file[1200];
    bitcask_options_t *o = NULL;
    bitcask_t *mdb = NULL;
    path_of(p, sizeof p, "merge-failure");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_max_file_size(o, 1024));
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    /* About 90-byte records: eleven per 1 KiB file, so keys 0 to 5 at least
     * live in the first data file. */
    CHECK_OK(bitcask_open(p, o, &mdb));
    for (int i = 0; i < 40; i++) {
      char key[32], val[96];
      snprintf(key, sizeof key, "mf:%02d", i);
      snprintf(val, sizeof val,
               "value of mf:%02d, padded to make the record longer, about ninety bytes", i);
      CHECK_OK(bitcask_put(mdb, S(key), S(val)));
    }
    CHECK(stat_of(mdb, BITCASK_STAT_DATA_FILES) > 3);
    check_no_merge_error(mdb);
    CHECK_OK(bitcask_close(mdb));
    bitcask_destroy(mdb);
    /* A clean reopen leaves a hint for every sealed file; the next open reads
     * the first file's hint, not the file, so it does not see the damage. */
    snprintf(file, sizeof file, "%s/0000000001.hint", p);
    for (int round = 0; round < 50 && !file_exists(file); round++) {
      CHECK_OK(bitcask_open(p, o, &mdb));
      CHECK_OK(bitcask_close(mdb));
      bitcask_destroy(mdb);
    }
    CHECK(file_exists(file));
    snprintf(file, sizeof file, "%s/0000000001.data", p);
    flip_byte_of(file, "value of mf:00,");

    CHECK_OK(bitcask_open(p, o, &mdb));
    check_no_merge_error(mdb);
    /* Dead bytes in the first file, so that the merge reads it. */
    for (int i = 1; i <= 5; i++) {
      char key[32];
      snprintf(key, sizeof key, "mf:%02d", i);
      CHECK_OK(bitcask_put(mdb, S(key), S("new")));
    }
    CHECK_STATUS(bitcask_merge(mdb), BITCASK_CORRUPTION);
    CHECK(contains(bitcask_last_error_message(), "0000000001.data"));
    CHECK(stat_of(mdb, BITCASK_STAT_MERGES) == 0);
    CHECK(stat_of(mdb, BITCASK_STAT_MERGE_FAILURES) == 1);
    bitcask_status_t code = BITCASK_OK;
    char *msg = NULL;
    int os_error = -1;
    CHECK_OK(bitcask_last_merge_error(mdb, &code, &msg, &os_error));
    CHECK(code == BITCASK_CORRUPTION);
    /* A corruption does not come from the operating system. */
    CHECK(os_error == 0);
    CHECK(msg != NULL);
    CHECK(contains(msg, "0000000001.data"));
    bitcask_free(msg);
    /* Failures in a row are counted; the error stays the newest one. */
    CHECK_STATUS(bitcask_merge(mdb), BITCASK_CORRUPTION);
    CHECK(stat_of(mdb, BITCASK_STAT_MERGE_FAILURES) == 2);
    msg = NULL;
    os_error = -1;
    CHECK_OK(bitcask_last_merge_error(mdb, &code, &msg, &os_error));
    CHECK(code == BITCASK_CORRUPTION);
    CHECK(os_error == 0);
    bitcask_free(msg);

    code = BITCASK_OK;
    msg = (char *)"untouched";
    os_error = -1;
    CHECK_STATUS(bitcask_last_merge_error(NULL, &code, &msg, &os_error),
                 BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_last_merge_error(mdb, NULL, &msg, &os_error),
                 BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_last_merge_error(mdb, &code, NULL, &os_error),
                 BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_last_merge_error(mdb, &code, &msg, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK(code == BITCASK_OK);
    CHECK(strcmp(msg, "untouched") == 0);
    CHECK(os_error == -1);
    CHECK_OK(bitcask_close(mdb));
    CHECK_STATUS(bitcask_last_merge_error(mdb, &code, &msg, &os_error), BITCASK_CLOSED);
    CHECK(code == BITCASK_OK && os_error == -1);
    bitcask_destroy(mdb);
    bitcask_options_destroy(o);
  }

  start_phase("backup");
  {
    char src[1100], dst[1100];
    bitcask_t *sdb = NULL, *bdb = NULL;
    bitcask_options_t *o = NULL;
    uint64_t seq = 0, last = 0, n = 0;
    path_of(src, sizeof src, "backup-src");
    path_of(dst, sizeof dst, "backup-dst");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_max_file_size(o, 1024)); /* linked and copied files */
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    CHECK_OK(bitcask_open(src, o, &sdb));
    for (int i = 0; i < 50; i++) {
      char key[32], val[64];
      snprintf(key, sizeof key, "bk:%02d", i);
      snprintf(val, sizeof val, "value %d, padded to fill several files", i);
      CHECK_OK(bitcask_put(sdb, S(key), S(val)));
    }
    CHECK_OK(bitcask_delete(sdb, S("bk:07")));
    CHECK(stat_of(sdb, BITCASK_STAT_DATA_FILES) > 2);
    CHECK_OK(bitcask_stat(sdb, BITCASK_STAT_LAST_SEQ, &last));
    CHECK_OK(bitcask_backup(sdb, dst, &seq));
    CHECK(seq == last);
    /* Later writes are not in the copy. */
    CHECK_OK(bitcask_put(sdb, S("bk:after"), S("later")));

    CHECK_OK(bitcask_open(dst, o, &bdb));
    CHECK_OK(bitcask_count(bdb, &n));
    CHECK(n == 49);
    check_get(bdb, "bk:00", "value 0, padded to fill several files");
    check_get(bdb, "bk:49", "value 49, padded to fill several files");
    check_missing(bdb, "bk:07");
    check_missing(bdb, "bk:after");
    CHECK(stat_of(bdb, BITCASK_STAT_LAST_SEQ) == seq);
    CHECK_OK(bitcask_close(bdb));
    bitcask_destroy(bdb);

    /* The destination now holds files: refused, and the copy is untouched. */
    seq = 777;
    CHECK_STATUS(bitcask_backup(sdb, dst, &seq), BITCASK_IO);
    CHECK(seq == 777);
    CHECK(contains(bitcask_last_error_message(), "backup-dst"));
    CHECK_OK(bitcask_open(dst, o, &bdb));
    check_missing(bdb, "bk:after");
    CHECK_OK(bitcask_close(bdb));
    bitcask_destroy(bdb);

    CHECK_STATUS(bitcask_backup(NULL, dst, &seq), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_backup(sdb, NULL, &seq), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_backup(sdb, dst, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK(seq == 777);
    CHECK_OK(bitcask_close(sdb));
    path_of(dst, sizeof dst, "backup-after-close");
    CHECK_STATUS(bitcask_backup(sdb, dst, &seq), BITCASK_CLOSED);
    CHECK(seq == 777 && !file_exists(dst));
    bitcask_destroy(sdb);
    bitcask_options_destroy(o);
  }

  start_phase("ttl");
  {
    char p[1100];
    bitcask_options_t *o = NULL;
    bitcask_t *tdb = NULL;
    bitcask_batch_t *b = NULL;
    uint64_t ms = 777, n = 0;
    path_of(p, sizeof p, "ttl");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    CHECK_OK(bitcask_open(p, o, &tdb));

    CHECK_OK(bitcask_put_ttl(tdb, S("t:hour"), S("an hour"), 3600 * 1000));
    check_get(tdb, "t:hour", "an hour");
    check_ttl_about(tdb, "t:hour", 3600 * 1000);
    /* Sub-second TTLs round up to a whole second. */
    CHECK_OK(bitcask_put_ttl(tdb, S("t:1ms"), S("v"), 1));
    CHECK(ttl_of(tdb, "t:1ms") <= 2000);
    CHECK_OK(bitcask_delete(tdb, S("t:1ms")));

    CHECK_OK(bitcask_put(tdb, S("t:plain"), S("forever")));
    check_no_expiry(tdb, "t:plain");
    /* A plain put over a key with a TTL makes it persistent again. */
    CHECK_OK(bitcask_put_ttl(tdb, S("t:again"), S("v1"), 60 * 1000));
    check_ttl_about(tdb, "t:again", 60 * 1000);
    CHECK_OK(bitcask_put(tdb, S("t:again"), S("v2")));
    check_no_expiry(tdb, "t:again");
    check_get(tdb, "t:again", "v2");

    CHECK_STATUS(bitcask_ttl(tdb, S("t:absent"), &ms), BITCASK_NOT_FOUND);
    CHECK(ms == 777);
    CHECK_OK(bitcask_delete(tdb, S("t:again")));
    check_expired(tdb, "t:again");

    /* A zero or too long TTL writes nothing. */
    CHECK_STATUS(bitcask_put_ttl(tdb, S("t:zero"), S("v"), 0), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "ttl"));
    CHECK_STATUS(bitcask_put_ttl(tdb, S("t:zero"), S("v"), UINT64_MAX), BITCASK_INVALID_OPTION);
    CHECK_STATUS(bitcask_put_ttl(tdb, S("t:zero"), S("v"), (uint64_t)1 << 31 << 10),
                 BITCASK_INVALID_OPTION);
    check_missing(tdb, "t:zero");
    /* The longest TTL, 2^31 - 1 seconds, is accepted. */
    CHECK_OK(bitcask_put_ttl(tdb, S("t:longest"), S("v"), (uint64_t)2147483647 * 1000));
    check_ttl_about(tdb, "t:longest", (uint64_t)2147483647 * 1000);

    /* Batches: a TTL per put, checked when written. */
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_OK(bitcask_batch_put_ttl(b, S("t:b1"), S("one"), 90 * 1000));
    CHECK_OK(bitcask_batch_put(b, S("t:b2"), S("two")));
    CHECK_OK(bitcask_write(tdb, b));
    check_get(tdb, "t:b1", "one");
    check_ttl_about(tdb, "t:b1", 90 * 1000);
    check_no_expiry(tdb, "t:b2");
    CHECK_OK(bitcask_batch_clear(b));
    CHECK_OK(bitcask_batch_put(b, S("t:b3"), S("three")));
    CHECK_OK(bitcask_batch_put_ttl(b, S("t:b4"), S("four"), 0));
    CHECK_STATUS(bitcask_write(tdb, b), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "ttl"));
    check_missing(tdb, "t:b3");
    check_missing(tdb, "t:b4");
    bitcask_batch_destroy(b);

    /* Expiry survives a reopen. */
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
    CHECK_OK(bitcask_open(p, o, &tdb));
    check_ttl_about(tdb, "t:hour", 3600 * 1000);
    check_ttl_about(tdb, "t:b1", 90 * 1000);
    check_no_expiry(tdb, "t:plain");
    check_no_expiry(tdb, "t:b2");
    CHECK_OK(bitcask_count(tdb, &n));
    CHECK(n == 5); /* hour, plain, longest, b1, b2 */

    CHECK_STATUS(bitcask_ttl(tdb, S("t:hour"), NULL), BITCASK_INVALID_ARGUMENT);
    CHECK(contains(bitcask_last_error_message(), "ms_left"));
    CHECK_STATUS(bitcask_ttl(NULL, S("t:hour"), &ms), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_ttl(tdb, NULL, 3, &ms), BITCASK_INVALID_ARGUMENT);
    CHECK(ms == 777);
    CHECK_STATUS(bitcask_put_ttl(NULL, S("k"), S("v"), 1000), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_put_ttl(tdb, NULL, 3, S("v"), 1000), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_put_ttl(tdb, NULL, 0, S("v"), 1000), BITCASK_EMPTY_KEY);
    CHECK_STATUS(bitcask_batch_put_ttl(NULL, S("k"), S("v"), 1000), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_options_set_default_ttl(NULL, 1000), BITCASK_INVALID_ARGUMENT);
    CHECK(strcmp(bitcask_strerror(BITCASK_NO_EXPIRY), "key has no expiry") == 0);

    CHECK_OK(bitcask_close(tdb));
    CHECK_STATUS(bitcask_ttl(tdb, S("t:hour"), &ms), BITCASK_CLOSED);
    CHECK_STATUS(bitcask_put_ttl(tdb, S("t:hour"), S("v"), 1000), BITCASK_CLOSED);
    CHECK(ms == 777);
    bitcask_destroy(tdb);
    bitcask_options_destroy(o);
  }

  start_phase("ttl: default from the options");
  {
    char p[1100];
    bitcask_options_t *o = NULL;
    bitcask_t *tdb = NULL;
    bitcask_batch_t *b = NULL;
    path_of(p, sizeof p, "ttl-default");
    CHECK_OK(bitcask_options_create(&o));
    /* Too long: refused at open, naming the option. */
    CHECK_OK(bitcask_options_set_default_ttl(o, UINT64_MAX));
    CHECK_STATUS(bitcask_open(p, o, &tdb), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "default_ttl"));
    CHECK(tdb == NULL);

    CHECK_OK(bitcask_options_set_default_ttl(o, 120 * 1000));
    CHECK_OK(bitcask_open(p, o, &tdb));
    CHECK_OK(bitcask_put(tdb, S("d:put"), S("v")));
    check_ttl_about(tdb, "d:put", 120 * 1000);
    /* A TTL of its own wins over the default. */
    CHECK_OK(bitcask_put_ttl(tdb, S("d:own"), S("v"), 3600 * 1000));
    check_ttl_about(tdb, "d:own", 3600 * 1000);
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_OK(bitcask_batch_put(b, S("d:batch"), S("v")));
    CHECK_OK(bitcask_write(tdb, b));
    check_ttl_about(tdb, "d:batch", 120 * 1000);
    bitcask_batch_destroy(b);
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);

    /* 0 turns the default off again: plain puts never expire. */
    CHECK_OK(bitcask_options_set_default_ttl(o, 0));
    CHECK_OK(bitcask_open(p, o, &tdb));
    check_ttl_about(tdb, "d:put", 120 * 1000);
    CHECK_OK(bitcask_put(tdb, S("d:plain"), S("v")));
    check_no_expiry(tdb, "d:plain");
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
    bitcask_options_destroy(o);
  }

  start_phase("ttl: expiry in real time, merge drops expired values");
  {
    char p[1100], pd[1100];
    bitcask_options_t *o = NULL;
    bitcask_t *tdb = NULL, *ddb = NULL;
    bitcask_batch_t *b = NULL;
    uint64_t n = 0, v = 777;
    path_of(p, sizeof p, "ttl-expiry");
    path_of(pd, sizeof pd, "ttl-expiry-default");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_max_file_size(o, 1024));
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    CHECK_OK(bitcask_open(p, o, &tdb));
    CHECK_OK(bitcask_options_set_default_ttl(o, 1000));
    CHECK_OK(bitcask_open(pd, o, &ddb));

    CHECK_OK(bitcask_put_ttl(tdb, S("x:short"), S("gone soon"), 1000));
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_OK(bitcask_batch_put_ttl(b, S("x:batch"), S("gone soon too"), 1000));
    CHECK_OK(bitcask_write(tdb, b));
    bitcask_batch_destroy(b);
    CHECK_OK(bitcask_put(tdb, S("x:stays"), S("persistent")));
    CHECK_OK(bitcask_put_ttl(tdb, S("x:hour"), S("an hour"), 3600 * 1000));
    CHECK_OK(bitcask_put(ddb, S("x:default"), S("gone soon")));
    check_get(tdb, "x:short", "gone soon");
    check_get(tdb, "x:batch", "gone soon too");
    check_get(ddb, "x:default", "gone soon");
    CHECK(ttl_of(tdb, "x:short") <= 2000);
    CHECK(ttl_of(ddb, "x:default") <= 2000);
    CHECK_OK(bitcask_count(tdb, &n));
    CHECK(n == 4);
    /* Seal the files holding them, so that a merge can read them. */
    for (int i = 0; i < 40; i++) {
      char key[32];
      snprintf(key, sizeof key, "x:fill%02d", i);
      CHECK_OK(bitcask_put(tdb, S(key), S("filler, padded to seal the first data files")));
    }
    CHECK(stat_of(tdb, BITCASK_STAT_DATA_FILES) > 2);
    CHECK_STATUS(bitcask_stat(tdb, BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED, &v),
                 BITCASK_NOT_FOUND);
    CHECK(v == 777);

    /* A 1000 ms TTL lives less than 2 s. */
    sleep_ms(2100);
    check_expired(tdb, "x:short");
    check_expired(tdb, "x:batch");
    check_expired(ddb, "x:default");
    check_get(tdb, "x:stays", "persistent");
    check_no_expiry(tdb, "x:stays");
    check_ttl_about(tdb, "x:hour", 3600 * 1000);
    CHECK_OK(bitcask_count(tdb, &n));
    CHECK(n == 42);
    CHECK(stat_of(tdb, BITCASK_STAT_KEYS) == 42);
    CHECK_OK(bitcask_count(ddb, &n));
    CHECK(n == 0);
    {
      bitcask_iterator_t *it = NULL;
      CHECK_OK(bitcask_iter_create_range(tdb, S("x:"), S("x:f"), false, &it));
      check_walk(it, "");
      bitcask_iter_destroy(it);
    }

    CHECK_OK(bitcask_merge(tdb));
    CHECK(stat_of(tdb, BITCASK_STAT_LAST_MERGE_EXPIRED_DROPPED) == 2);
    check_expired(tdb, "x:short");
    check_expired(tdb, "x:batch");
    check_get(tdb, "x:stays", "persistent");
    check_ttl_about(tdb, "x:hour", 3600 * 1000);
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
    CHECK_OK(bitcask_close(ddb));
    bitcask_destroy(ddb);

    /* Still expired after a reopen. */
    CHECK_OK(bitcask_options_set_default_ttl(o, 0));
    CHECK_OK(bitcask_open(p, o, &tdb));
    check_expired(tdb, "x:short");
    check_expired(tdb, "x:batch");
    check_get(tdb, "x:fill39", "filler, padded to seal the first data files");
    CHECK_OK(bitcask_count(tdb, &n));
    CHECK(n == 42);
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
    bitcask_options_destroy(o);
  }

  start_phase("stats: tombstones");
  {
    char p[1100];
    bitcask_t *tdb = NULL;
    path_of(p, sizeof p, "tombstones");
    CHECK_OK(bitcask_open(p, NULL, &tdb));
    CHECK(stat_of(tdb, BITCASK_STAT_TOMBSTONES) == 0);
    CHECK_OK(bitcask_put(tdb, S("a"), S("1")));
    CHECK_OK(bitcask_put(tdb, S("b"), S("2")));
    CHECK(stat_of(tdb, BITCASK_STAT_TOMBSTONES) == 0);
    CHECK_OK(bitcask_delete(tdb, S("a")));
    CHECK(stat_of(tdb, BITCASK_STAT_TOMBSTONES) == 1);
    bitcask_batch_t *b = NULL;
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_OK(bitcask_batch_delete(b, S("b")));
    CHECK_OK(bitcask_write(tdb, b));
    bitcask_batch_destroy(b);
    CHECK(stat_of(tdb, BITCASK_STAT_TOMBSTONES) == 2);
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
    /* Counted again from the files at open. */
    CHECK_OK(bitcask_open(p, NULL, &tdb));
    CHECK(stat_of(tdb, BITCASK_STAT_TOMBSTONES) == 2);
    CHECK_OK(bitcask_close(tdb));
    bitcask_destroy(tdb);
  }

  start_phase("use after close");
  {
    bitcask_iterator_t *it = NULL;
    CHECK_OK(bitcask_iter_create(db, false, &it));
    CHECK(bitcask_iter_valid(it));
    CHECK_OK(bitcask_close(db));
    CHECK_OK(bitcask_close(db));
    CHECK_STATUS(bitcask_put(db, S("k"), S("v")), BITCASK_CLOSED);
    CHECK(contains(bitcask_last_error_message(), "closed"));
    uint8_t buf[8];
    size_t len = 5;
    CHECK_STATUS(bitcask_get(db, S("b1"), buf, sizeof buf, &len), BITCASK_CLOSED);
    CHECK(len == 5);
    CHECK_STATUS(bitcask_delete(db, S("b1")), BITCASK_CLOSED);
    CHECK_STATUS(bitcask_contains(db, S("b1")), BITCASK_CLOSED);
    CHECK_STATUS(bitcask_sync(db), BITCASK_CLOSED);
    CHECK_STATUS(bitcask_merge(db), BITCASK_CLOSED);
    uint64_t n = 0;
    CHECK_STATUS(bitcask_count(db, &n), BITCASK_CLOSED);
    bitcask_iterator_t *it2 = NULL;
    CHECK_STATUS(bitcask_iter_create(db, false, &it2), BITCASK_CLOSED);
    CHECK(it2 == NULL);
    CHECK_STATUS(bitcask_iter_next(it), BITCASK_CLOSED);
    CHECK(!bitcask_iter_valid(it));
    CHECK_STATUS(bitcask_iter_seek_first(it), BITCASK_CLOSED);
    bitcask_iter_destroy(it);
    bitcask_destroy(db);
    db = NULL;
  }

  start_phase("reopen");
  /* Reads with pread(2) from here on. */
  CHECK_OK(bitcask_options_set_mmap(opts, false));
  CHECK_STATUS(bitcask_options_set_mmap(NULL, false), BITCASK_INVALID_ARGUMENT);
  CHECK_OK(bitcask_open(dbpath, opts, &db));
  check_get(db, "b1", "one");
  check_get(db, "b4", "four");
  check_get(db, "empty", "");
  check_get(db, "thread3:099", "v99");
  check_get(db, "merge:19", "round 9 of key 19, padded to make it longer");
  check_missing(db, "foo");
  check_missing(db, "b2");

  start_phase("iterator outlives its database");
  {
    bitcask_t *db2 = NULL;
    bitcask_iterator_t *it = NULL;
    char p[1100];
    path_of(p, sizeof p, "short-lived");
    CHECK_OK(bitcask_open(p, NULL, &db2));
    CHECK_OK(bitcask_put(db2, S("a"), S("1")));
    CHECK_OK(bitcask_put(db2, S("b"), S("2")));
    CHECK_OK(bitcask_iter_create(db2, false, &it));
    check_at(it, "a");
    bitcask_destroy(db2);
    check_at(it, "a"); /* the current entry is the iterator's own copy */
    CHECK_STATUS(bitcask_iter_next(it), BITCASK_CLOSED);
    CHECK(!bitcask_iter_valid(it));
    /* A loop that stopped on bitcask_iter_valid can tell this from the end. */
    CHECK_STATUS(bitcask_iter_get_error(it), BITCASK_CLOSED);
    CHECK(contains(bitcask_last_error_message(), "closed"));
    CHECK_STATUS(bitcask_iter_seek(it, S("a")), BITCASK_CLOSED);
    bitcask_iter_destroy(it);
    CHECK_STATUS(bitcask_iter_get_error(NULL), BITCASK_INVALID_ARGUMENT);
  }

  start_phase("snapshot: a view as of one sequence number");
  {
    bitcask_t *db2 = NULL;
    bitcask_snapshot_t *snap = NULL;
    bitcask_iterator_t *it = NULL;
    char p[1100];
    uint8_t buf[16];
    size_t len = 0;
    uint64_t n = 0;
    path_of(p, sizeof p, "snapshot");
    CHECK_OK(bitcask_open(p, NULL, &db2));
    CHECK_OK(bitcask_put(db2, S("a"), S("1")));
    CHECK_OK(bitcask_put(db2, S("b"), S("1")));
    CHECK_OK(bitcask_put(db2, S("c"), S("1")));
    CHECK_OK(bitcask_snapshot_create(db2, &snap));
    CHECK(bitcask_snapshot_seq(snap) == 3);
    CHECK(stat_of(db2, BITCASK_STAT_SNAPSHOTS) == 1);
    CHECK_OK(bitcask_put(db2, S("a"), S("2")));
    CHECK_OK(bitcask_delete(db2, S("b")));
    CHECK_OK(bitcask_put(db2, S("ab"), S("new")));
    CHECK_OK(bitcask_merge(db2));
    CHECK(stat_of(db2, BITCASK_STAT_SNAPSHOT_VERSIONS) == 3);
    /* Reads through the snapshot see the state it was taken at. */
    CHECK_OK(bitcask_snapshot_get(snap, S("a"), buf, sizeof buf, &len));
    CHECK(len == 1 && buf[0] == '1');
    CHECK_OK(bitcask_snapshot_get(snap, S("b"), buf, sizeof buf, &len));
    CHECK(len == 1 && buf[0] == '1');
    CHECK_STATUS(bitcask_snapshot_get(snap, S("ab"), buf, sizeof buf, &len), BITCASK_NOT_FOUND);
    CHECK_STATUS(bitcask_snapshot_get(snap, S("a"), NULL, 0, &len), BITCASK_BUFFER_TOO_SMALL);
    CHECK(len == 1);
    {
      uint8_t *v = NULL;
      CHECK_OK(bitcask_snapshot_get_alloc(snap, S("b"), &v, &len));
      CHECK(len == 1 && v[0] == '1');
      bitcask_free(v);
    }
    CHECK_OK(bitcask_snapshot_contains(snap, S("b")));
    CHECK_STATUS(bitcask_snapshot_contains(snap, S("ab")), BITCASK_NOT_FOUND);
    CHECK_OK(bitcask_snapshot_count(snap, &n));
    CHECK(n == 3);
    CHECK_OK(bitcask_count(db2, &n));
    CHECK(n == 3);
    CHECK_OK(bitcask_snapshot_iter_create(snap, false, &it));
    check_walk(it, "a b c");
    CHECK_OK(bitcask_iter_get_error(it));
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_snapshot_iter_create_range(snap, S("a"), S("c"), true, &it));
    check_walk(it, "b a");
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_snapshot_iter_create_prefix(snap, S("a"), false, &it));
    check_walk(it, "a");
    /* The iterator's value is the snapshot's, read after the merge. */
    CHECK_OK(bitcask_iter_seek_first(it));
    {
      const uint8_t *v = NULL;
      CHECK_OK(bitcask_iter_value(it, &v, &len));
      CHECK(len == 1 && v[0] == '1');
    }
    /* The database's own iterator sees the present. */
    {
      bitcask_iterator_t *now = NULL;
      CHECK_OK(bitcask_iter_create(db2, false, &now));
      check_walk(now, "a ab c");
      bitcask_iter_destroy(now);
    }
    /* An iterator keeps its view after its snapshot handle goes. */
    bitcask_snapshot_destroy(snap);
    CHECK(stat_of(db2, BITCASK_STAT_SNAPSHOTS) == 1);
    CHECK_OK(bitcask_iter_seek_first(it));
    check_walk(it, "a");
    bitcask_iter_destroy(it);
    CHECK(stat_of(db2, BITCASK_STAT_SNAPSHOTS) == 0);
    CHECK(stat_of(db2, BITCASK_STAT_SNAPSHOT_VERSIONS) == 0);
    /* A snapshot outlives its database and then reports BITCASK_CLOSED. */
    CHECK_OK(bitcask_snapshot_create(db2, &snap));
    bitcask_destroy(db2);
    CHECK_STATUS(bitcask_snapshot_get(snap, S("a"), buf, sizeof buf, &len), BITCASK_CLOSED);
    CHECK_STATUS(bitcask_snapshot_iter_create(snap, false, &it), BITCASK_CLOSED);
    bitcask_snapshot_destroy(snap);
    bitcask_snapshot_destroy(NULL);
    CHECK(bitcask_snapshot_seq(NULL) == 0);
    CHECK_STATUS(bitcask_snapshot_create(NULL, &snap), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_snapshot_count(NULL, &n), BITCASK_INVALID_ARGUMENT);
  }

  start_phase("events: a listener on the options");
  {
    static struct event_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    bitcask_t *db2 = NULL;
    bitcask_options_t *o = NULL;
    char p[1100], data[1200];
    two_records(p, sizeof p, "events");
    /* A torn write after the last record, and no hint: open cuts it. */
    snprintf(data, sizeof data, "%s/0000000001.data", p);
    {
      char hint[1200];
      snprintf(hint, sizeof hint, "%s/0000000001.hint", p);
      unlink(hint);
      FILE *f = fopen(data, "ab");
      CHECK(f != NULL);
      fputs("torn", f);
      fclose(f);
    }
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_event_listener(o, record_event, &log));
    CHECK_OK(bitcask_options_set_sync(o, BITCASK_SYNC_ALWAYS, 0));
    CHECK_OK(bitcask_options_set_slow_sync_ms(o, 0)); /* every sync is slow */
    CHECK_STATUS(bitcask_options_set_event_listener(NULL, record_event, &log),
                 BITCASK_INVALID_ARGUMENT);
    CHECK_OK(bitcask_open(p, o, &db2));
    int i = wait_event(&log, BITCASK_EVENT_DROPPED_AT_OPEN);
    CHECK(strcmp(log.name[i], "dropped_at_open") == 0);
    CHECK(strcmp(log.file[i], data) == 0);
    CHECK(log.bytes[i] == 4);
    CHECK(log.offset[i] != BITCASK_EVENT_NO_VALUE);
    CHECK(log.duration_us[i] == BITCASK_EVENT_NO_VALUE);
    CHECK(log.error[i] == BITCASK_OK);
    CHECK_OK(bitcask_put(db2, S("c"), S("cccc")));
    i = wait_event(&log, BITCASK_EVENT_SLOW_SYNC);
    CHECK(strcmp(log.file[i], data) == 0);
    CHECK(log.duration_us[i] != BITCASK_EVENT_NO_VALUE);
    CHECK_OK(bitcask_close(db2));
    bitcask_destroy(db2);
    bitcask_options_destroy(o);
  }

  start_phase("error: locked directory");
  {
    bitcask_t *second = NULL;
    CHECK_STATUS(bitcask_open(dbpath, NULL, &second), BITCASK_LOCKED);
    CHECK(second == NULL);
    CHECK(contains(bitcask_last_error_message(), "locked"));
  }

  start_phase("error: open modes");
  {
    char missing[1024], fresh[1024];
    path_of(missing, sizeof missing, "no-such-db");
    path_of(fresh, sizeof fresh, "fresh-db");
    bitcask_options_t *o = NULL;
    CHECK_OK(bitcask_options_create(&o));
    /* A mistyped path is an error, not a new empty database. */
    CHECK_OK(bitcask_options_set_create_if_missing(o, false));
    bitcask_t *none = NULL;
    CHECK_STATUS(bitcask_open(missing, o, &none), BITCASK_DB_NOT_FOUND);
    CHECK(none == NULL);
    CHECK(access(missing, F_OK) != 0);
    CHECK(strcmp(bitcask_strerror(BITCASK_DB_NOT_FOUND), "no database at the path") == 0);
    /* An existing database: opens without creating; refused when it must not exist. */
    bitcask_options_t *x = NULL;
    CHECK_OK(bitcask_options_create(&x));
    CHECK_OK(bitcask_options_set_error_if_exists(x, true));
    bitcask_t *f = NULL;
    CHECK_OK(bitcask_open(fresh, x, &f));
    CHECK_OK(bitcask_put(f, S("k"), S("v")));
    CHECK_OK(bitcask_close(f));
    bitcask_destroy(f);
    f = NULL;
    CHECK_STATUS(bitcask_open(fresh, x, &f), BITCASK_DB_EXISTS);
    CHECK(f == NULL);
    CHECK(contains(bitcask_last_error_message(), "already exists"));
    CHECK_OK(bitcask_open(fresh, o, &f));
    check_get(f, "k", "v");
    CHECK_OK(bitcask_close(f));
    bitcask_destroy(f);
    CHECK_STATUS(bitcask_options_set_create_if_missing(NULL, true), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_options_set_error_if_exists(NULL, true), BITCASK_INVALID_ARGUMENT);
    bitcask_options_destroy(x);
    bitcask_options_destroy(o);
  }

  start_phase("error: key and value limits");
  {
    static uint8_t big[70000];
    memset(big, 'k', sizeof big);
    CHECK_STATUS(bitcask_put(db, big, 4097, S("v")), BITCASK_KEY_TOO_LARGE);
    CHECK(contains(bitcask_last_error_message(), "4097"));
    CHECK_STATUS(bitcask_put(db, big, sizeof big, S("v")), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_put(db, S("k"), big, 1025), BITCASK_VALUE_TOO_LARGE);
    CHECK(contains(bitcask_last_error_message(), "1025"));
    CHECK_OK(bitcask_put(db, S("k"), big, 1024));
    CHECK_STATUS(bitcask_put(db, NULL, 0, S("v")), BITCASK_EMPTY_KEY);
    CHECK_STATUS(bitcask_delete(db, S("")), BITCASK_EMPTY_KEY);
    /* A batch refuses a length past the format's limit when it is added; the
     * database's own limits and empty keys are checked when it is written. */
    bitcask_batch_t *b = NULL;
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_STATUS(bitcask_batch_put(b, big, sizeof big, S("v")), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_batch_delete(b, big, sizeof big), BITCASK_KEY_TOO_LARGE);
    CHECK_OK(bitcask_batch_put(b, big, 4097, S("v")));
    CHECK_STATUS(bitcask_write(db, b), BITCASK_KEY_TOO_LARGE);
    CHECK_OK(bitcask_batch_clear(b));
    CHECK_OK(bitcask_batch_put(b, S(""), S("v")));
    CHECK_STATUS(bitcask_write(db, b), BITCASK_EMPTY_KEY);
    bitcask_batch_destroy(b);
  }

  start_phase("error: NULL arguments");
  {
    uint8_t buf[8];
    size_t len = 3;
    bitcask_t *none = NULL;
    CHECK_STATUS(bitcask_put(NULL, S("k"), S("v")), BITCASK_INVALID_ARGUMENT);
    CHECK(contains(bitcask_last_error_message(), "db is NULL"));
    CHECK_STATUS(bitcask_put(db, NULL, 3, S("v")), BITCASK_INVALID_ARGUMENT);
    CHECK(contains(bitcask_last_error_message(), "key is NULL"));
    CHECK_STATUS(bitcask_put(db, S("k"), NULL, 1), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_get(db, S("b1"), buf, sizeof buf, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_get(db, S("b1"), NULL, 8, &len), BITCASK_INVALID_ARGUMENT);
    CHECK(len == 3);
    CHECK_STATUS(bitcask_get_alloc(db, S("b1"), NULL, &len), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_get(NULL, S("b1"), buf, sizeof buf, &len), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_contains(NULL, S("b1")), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_delete(NULL, S("b1")), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_write(db, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_write(NULL, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_sync(NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_close(NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_count(db, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_stat(db, BITCASK_STAT_KEYS, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_open(NULL, NULL, &none), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_open(dbpath, NULL, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK(none == NULL);
    CHECK_STATUS(bitcask_options_create(NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_options_set_salvage(NULL, true), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_batch_create(NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_batch_put(NULL, S("k"), S("v")), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_batch_count(NULL, &len), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_create(NULL, false, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_create(db, false, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_create_prefix(db, NULL, 2, false, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_next(NULL), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_seek(NULL, S("a")), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_key(NULL, NULL, NULL), BITCASK_INVALID_ARGUMENT);
    CHECK(!bitcask_iter_valid(NULL));
    bitcask_iterator_t *it = NULL;
    CHECK_OK(bitcask_iter_create(db, false, &it));
    CHECK_STATUS(bitcask_iter_key(it, NULL, &len), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_iter_value(it, NULL, NULL), BITCASK_INVALID_ARGUMENT);
    bitcask_iter_destroy(it);
    bitcask_destroy(NULL);
    bitcask_options_destroy(NULL);
    bitcask_batch_destroy(NULL);
    bitcask_free(NULL);
  }

  start_phase("error: invalid UTF-8 path");
  {
    bitcask_t *bad = NULL;
    CHECK_STATUS(bitcask_open("/tmp/\xff\xfe-bitcask", NULL, &bad), BITCASK_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    CHECK(contains(bitcask_last_error_message(), "UTF-8"));
  }

  start_phase("error: read-only write");
  {
    bitcask_options_t *ro = NULL;
    bitcask_t *rdb = NULL;
    CHECK_OK(bitcask_options_create(&ro));
    CHECK_OK(bitcask_options_set_read_only(ro, true));
    /* Read-only takes no lock, so it opens beside the writer. */
    CHECK_OK(bitcask_open(dbpath, ro, &rdb));
    check_get(rdb, "b1", "one");
    CHECK_STATUS(bitcask_put(rdb, S("k"), S("v")), BITCASK_READ_ONLY);
    CHECK_STATUS(bitcask_merge(rdb), BITCASK_READ_ONLY);
    CHECK(contains(bitcask_last_error_message(), "read-only"));
    uint64_t seq = 7;
    CHECK_STATUS(bitcask_stat(rdb, BITCASK_STAT_LAST_SEQ, &seq), BITCASK_NOT_FOUND);
    CHECK(seq == 7);
    bitcask_destroy(rdb);
    /* A read-only open of a missing directory is an OS error. */
    char p[1100];
    path_of(p, sizeof p, "does-not-exist");
    CHECK_STATUS(bitcask_open(p, ro, &rdb), BITCASK_IO);
    CHECK(bitcask_last_os_error() == ENOENT);
    CHECK(contains(bitcask_last_error_message(), "does-not-exist"));
    bitcask_options_destroy(ro);
  }

  start_phase("error: invalid option");
  {
    bitcask_options_t *o = NULL;
    bitcask_t *odb = NULL;
    char p[1100];
    path_of(p, sizeof p, "bad-options");
    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_max_file_size(o, 10));
    CHECK_STATUS(bitcask_open(p, o, &odb), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "max_file_size"));
    CHECK(odb == NULL);
    bitcask_options_destroy(o);

    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_sync(o, 42, 0));
    CHECK_STATUS(bitcask_open(p, o, &odb), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "sync"));
    bitcask_options_destroy(o);

    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_sync(o, BITCASK_SYNC_EVERY_MS, 0));
    CHECK_STATUS(bitcask_open(p, o, &odb), BITCASK_INVALID_OPTION);
    CHECK_OK(bitcask_options_set_sync(o, BITCASK_SYNC_EVERY_MS, 5));
    CHECK_OK(bitcask_options_set_merge_trigger_fragmentation(o, 300));
    CHECK_STATUS(bitcask_open(p, o, &odb), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "merge_trigger_fragmentation"));
    bitcask_options_destroy(o);

    CHECK_OK(bitcask_options_create(&o));
    CHECK_OK(bitcask_options_set_merge_threshold_fragmentation(o, 101));
    CHECK_STATUS(bitcask_open(p, o, &odb), BITCASK_INVALID_OPTION);
    CHECK(contains(bitcask_last_error_message(), "merge_threshold_fragmentation"));
    /* Every setter on valid values opens. */
    CHECK_OK(bitcask_options_set_merge_threshold_fragmentation(o, 40));
    CHECK_OK(bitcask_options_set_sync(o, BITCASK_SYNC_ALWAYS, 0));
    CHECK_OK(bitcask_options_set_max_key_size(o, 64));
    CHECK_OK(bitcask_options_set_write_buffer_size(o, 1 << 16));
    CHECK_OK(bitcask_options_set_write_merging(o, false));
    CHECK_OK(bitcask_options_set_salvage(o, true));
    CHECK_OK(bitcask_options_set_auto_merge(o, false));
    CHECK_OK(bitcask_options_set_merge_check_interval_ms(o, 100));
    CHECK_OK(bitcask_options_set_merge_trigger_fragmentation(o, 50));
    CHECK_OK(bitcask_options_set_merge_trigger_dead_bytes(o, 1 << 20));
    CHECK_OK(bitcask_options_set_merge_trigger_total_dead_bytes(o, 1 << 22));
    CHECK_OK(bitcask_options_set_merge_threshold_dead_bytes(o, 1 << 19));
    CHECK_OK(bitcask_options_set_merge_bytes_per_sec(o, 1 << 24));
    CHECK_OK(bitcask_open(p, o, &odb));
    uint8_t k65[65];
    memset(k65, 'k', sizeof k65);
    CHECK_STATUS(bitcask_put(odb, k65, sizeof k65, S("v")), BITCASK_KEY_TOO_LARGE);
    CHECK_OK(bitcask_put(odb, S("k"), S("v")));
    bitcask_destroy(odb);
    bitcask_options_destroy(o);
  }

  start_phase("error: corruption");
  {
    char p[1100], file[1200];
    bitcask_t *cdb = NULL;
    two_records(p, sizeof p, "corrupt");
    /* Flip a byte of the first record's value (the record starts after the
     * 16-byte file header). A valid record follows, so it is no torn tail. */
    /* As after a crash: without the hint a clean close leaves, open scans
     * the file. */
    snprintf(file, sizeof file, "%s/0000000001.hint", p);
    CHECK(unlink(file) == 0);
    snprintf(file, sizeof file, "%s/0000000001.data", p);
    flip_byte_of(file, "aaaa");
    CHECK_STATUS(bitcask_open(p, NULL, &cdb), BITCASK_CORRUPTION);
    CHECK(cdb == NULL);
    const char *msg = bitcask_last_error_message();
    CHECK(contains(msg, "0000000001.data"));
    CHECK(contains(msg, "offset 16"));
  }

  start_phase("iterator: a value that cannot be read is kept for bitcask_iter_get_error");
  {
    char p[1100], file[1200];
    bitcask_t *cdb = NULL;
    bitcask_iterator_t *it = NULL;
    two_records(p, sizeof p, "corrupt-value");
    /* The clean close left a hint, so open reads no record: the damage shows
     * only when the value is read. */
    snprintf(file, sizeof file, "%s/0000000001.data", p);
    flip_byte_of(file, "aaaa");
    CHECK_OK(bitcask_open(p, NULL, &cdb));
    CHECK_OK(bitcask_iter_create(cdb, false, &it));
    CHECK_STATUS(bitcask_iter_get_error(it), BITCASK_OK);
    int seen = 0, unreadable = 0;
    for (; bitcask_iter_valid(it); bitcask_iter_next(it)) {
      const uint8_t *v;
      size_t vn;
      seen++;
      if (bitcask_iter_value(it, &v, &vn) != BITCASK_OK) unreadable++;
    }
    CHECK(seen == 2 && unreadable == 1);
    CHECK_STATUS(bitcask_iter_get_error(it), BITCASK_CORRUPTION);
    CHECK(contains(bitcask_last_error_message(), "0000000001.data"));
    /* A seek starts over. */
    CHECK_OK(bitcask_iter_seek_first(it));
    CHECK_STATUS(bitcask_iter_get_error(it), BITCASK_OK);
    bitcask_iter_destroy(it);
    CHECK_OK(bitcask_close(cdb));
    bitcask_destroy(cdb);
  }

  start_phase("hostile: huge lengths are refused before a byte is read");
  {
    /* The buffers are one byte long: a length that is believed would read past
     * them (valgrind and the sanitizers would see it). */
    const uint8_t one[1] = {'k'};
    size_t huge = (size_t)1 << 40;
    uint8_t buf[4];
    size_t len = 0;
    CHECK_STATUS(bitcask_put(db, one, huge, one, 1), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_put(db, one, 1, one, huge), BITCASK_VALUE_TOO_LARGE);
    CHECK_STATUS(bitcask_put(db, one, 65536, one, 1), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_get(db, one, huge, buf, sizeof buf, &len), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_contains(db, one, huge), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_delete(db, one, huge), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_put(db, one, SIZE_MAX, one, 1), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_put(db, NULL, 5, one, 1), BITCASK_INVALID_ARGUMENT);
    CHECK_STATUS(bitcask_get(db, one, 1, NULL, 10, &len), BITCASK_INVALID_ARGUMENT);
    bitcask_batch_t *b;
    CHECK_OK(bitcask_batch_create(&b));
    CHECK_STATUS(bitcask_batch_put(b, one, huge, one, 1), BITCASK_KEY_TOO_LARGE);
    CHECK_STATUS(bitcask_batch_delete(b, one, huge), BITCASK_KEY_TOO_LARGE);
    bitcask_batch_destroy(b);
    CHECK(contains(bitcask_last_error_message(), "exceeds"));
  }

  start_phase("hostile: concurrent close");
  {
    char p[1100];
    path_of(p, sizeof p, "concurrent-close");
    for (int round = 0; round < 5; round++) {
      bitcask_t *cdb;
      CHECK_OK(bitcask_open(p, NULL, &cdb));
      pthread_t t[4];
      for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, busy_thread, cdb) == 0);
      CHECK_OK(bitcask_close(cdb));
      for (int i = 0; i < 4; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0);
        CHECK(r == NULL);
      }
      CHECK_STATUS(bitcask_put(cdb, S("k"), S("v")), BITCASK_CLOSED);
      bitcask_destroy(cdb);
    }
  }

  start_phase("close");
  CHECK_OK(bitcask_close(db));
  bitcask_destroy(db);
  bitcask_options_destroy(opts);
  remove_tree(workdir);

  phases_passed++;
  fprintf(stderr, "c_test: %d passed, 0 failed\n", phases_passed);
  return 0;
}
