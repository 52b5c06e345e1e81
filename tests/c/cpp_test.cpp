// The header from C++: compiles with g++ -Wall -Wextra -Werror and is usable with
// RAII. Usage: cpp_test [WORKDIR].
#include "bitcask.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct DbDeleter {
  void operator()(bitcask_t *db) const { bitcask_destroy(db); }
};
struct IterDeleter {
  void operator()(bitcask_iterator_t *it) const { bitcask_iter_destroy(it); }
};
struct BatchDeleter {
  void operator()(bitcask_batch_t *b) const { bitcask_batch_destroy(b); }
};
using Db = std::unique_ptr<bitcask_t, DbDeleter>;
using Iter = std::unique_ptr<bitcask_iterator_t, IterDeleter>;
using Batch = std::unique_ptr<bitcask_batch_t, BatchDeleter>;

void check(bitcask_status_t s, const char *what) {
  if (s != BITCASK_OK) {
    throw std::runtime_error(std::string(what) + ": " + bitcask_strerror(s) + ": " +
                             bitcask_last_error_message());
  }
}

const uint8_t *bytes(const std::string &s) {
  return reinterpret_cast<const uint8_t *>(s.data());
}

std::string get(const Db &db, const std::string &key) {
  uint8_t *v = nullptr;
  size_t len = 0;
  check(bitcask_get_alloc(db.get(), bytes(key), key.size(), &v, &len), "get");
  std::string out(reinterpret_cast<char *>(v), len);
  bitcask_free(v);
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp/bitcask-cpp-test";
  std::system(("rm -rf '" + dir + "'").c_str());
  try {
    bitcask_t *raw = nullptr;
    check(bitcask_open(dir.c_str(), nullptr, &raw), "open");
    Db db(raw);

    const std::vector<std::pair<std::string, std::string>> kvs = {
        {"apple", "red"}, {"banana", "yellow"}, {"cherry", "dark red"}};
    bitcask_batch_t *rb = nullptr;
    check(bitcask_batch_create(&rb), "batch");
    Batch batch(rb);
    for (const auto &kv : kvs) {
      check(bitcask_batch_put(batch.get(), bytes(kv.first), kv.first.size(),
                              bytes(kv.second), kv.second.size()),
            "batch put");
    }
    check(bitcask_write(db.get(), batch.get()), "write");
    if (get(db, "banana") != "yellow") throw std::runtime_error("wrong value");

    bitcask_status_t missing = bitcask_contains(db.get(), bytes("durian"), 6);
    if (missing != BITCASK_NOT_FOUND) throw std::runtime_error("durian found");

    const std::string fig = "fig";
    check(bitcask_put_ttl(db.get(), bytes(fig), fig.size(), bytes("purple"), 6, 60000), "put_ttl");
    uint64_t ms_left = 0;
    check(bitcask_ttl(db.get(), bytes(fig), fig.size(), &ms_left), "ttl");
    if (ms_left == 0 || ms_left > 61000) throw std::runtime_error("fig: wrong ttl");
    if (bitcask_ttl(db.get(), bytes("apple"), 5, &ms_left) != BITCASK_NO_EXPIRY ||
        ms_left != UINT64_MAX) {
      throw std::runtime_error("apple expires");
    }
    check(bitcask_delete(db.get(), bytes(fig), fig.size()), "delete");

    bitcask_iterator_t *ri = nullptr;
    check(bitcask_iter_create(db.get(), true, &ri), "iter");
    Iter it(ri);
    std::string order;
    for (; bitcask_iter_valid(it.get()); check(bitcask_iter_next(it.get()), "next")) {
      const uint8_t *k = nullptr;
      size_t klen = 0;
      check(bitcask_iter_key(it.get(), &k, &klen), "key");
      order += std::string(reinterpret_cast<const char *>(k), klen) + " ";
    }
    if (order != "cherry banana apple ") throw std::runtime_error("order: " + order);
    check(bitcask_close(db.get()), "close");
  } catch (const std::exception &e) {
    std::fprintf(stderr, "cpp_test: %s\ncpp_test: 0 passed, 1 failed\n", e.what());
    return 1;
  }
  std::system(("rm -rf '" + dir + "'").c_str());
  std::fprintf(stderr, "cpp_test: 1 passed, 0 failed\n");
  return 0;
}
