"""libbitcask from Python: the mapping, a batch, a prefix scan.

Run with the package installed (``make python-install``, then
``.venv/bin/python examples/hello.py``).
"""

import tempfile

import bitcask


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # sync="always": every write is fdatasynced before it returns.
        with bitcask.open(tmp + "/db", sync="always") as db:
            db[b"user:1"] = b"alice"
            print(db[b"user:1"])  # b'alice'

            with db.write_batch() as batch:  # all or nothing
                batch.put(b"user:2", b"bob")
                batch.delete(b"user:1")

            for key, value in db.prefix(b"user:"):  # key order
                print(key, value)

            try:
                db["user:3"] = b"carol"  # type: ignore[index]
            except TypeError as e:
                print("str keys are refused:", e)

            print(len(db), "key(s);", db.stats().disk_bytes, "bytes on disk")


if __name__ == "__main__":
    main()
