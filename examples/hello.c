/* The README's C quick start: open, write, read, iterate, close.
 * Build against an installed library: cc hello.c $(pkg-config --cflags --libs bitcask)
 * Usage: hello [DIR] (default ./hello-db). */
#include <bitcask.h>
#include <stdio.h>
#include <string.h>

#define S(str) (const uint8_t *)(str), strlen(str)

static int fail(const char *what, bitcask_status_t s) {
  fprintf(stderr, "%s: %s: %s\n", what, bitcask_strerror(s), bitcask_last_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "hello-db";
  bitcask_options_t *opts = NULL;
  bitcask_t *db = NULL;
  bitcask_status_t s;

  bitcask_options_create(&opts);
  bitcask_options_set_sync(opts, BITCASK_SYNC_ALWAYS, 0); /* fdatasync each write */
  s = bitcask_open(dir, opts, &db);
  bitcask_options_destroy(opts); /* open copied it */
  if (s != BITCASK_OK) return fail("open", s);

  if ((s = bitcask_put(db, S("user:1"), S("alice"))) != BITCASK_OK) return fail("put", s);
  if ((s = bitcask_put(db, S("user:2"), S("bob"))) != BITCASK_OK) return fail("put", s);

  char buf[64];
  size_t len;
  s = bitcask_get(db, S("user:1"), (uint8_t *)buf, sizeof buf, &len);
  if (s == BITCASK_OK) printf("user:1 = %.*s\n", (int)len, buf);
  s = bitcask_get(db, S("user:3"), (uint8_t *)buf, sizeof buf, &len);
  if (s == BITCASK_NOT_FOUND) printf("user:3 is not there\n");

  bitcask_iterator_t *it = NULL;
  if ((s = bitcask_iter_create_prefix(db, S("user:"), false, &it)) != BITCASK_OK)
    return fail("iter", s);
  for (; bitcask_iter_valid(it); bitcask_iter_next(it)) {
    const uint8_t *k, *v; /* borrowed until the next move */
    size_t klen, vlen;
    bitcask_iter_key(it, &k, &klen);
    bitcask_iter_value(it, &v, &vlen);
    printf("%.*s -> %.*s\n", (int)klen, (const char *)k, (int)vlen, (const char *)v);
  }
  /* The loop also stops when a move fails: ask which it was. */
  if ((s = bitcask_iter_get_error(it)) != BITCASK_OK) {
    bitcask_iter_destroy(it);
    return fail("iterate", s);
  }
  bitcask_iter_destroy(it);

  s = bitcask_close(db); /* reports a failed final sync; the handle stays valid */
  bitcask_destroy(db);
  return s == BITCASK_OK ? 0 : fail("close", s);
}
