package bitcask

// #include <bitcask.h>
import "C"

import "time"

// Batch collects puts (with or without a TTL) and deletes that DB.Write applies
// atomically; a later operation on the same key wins. The zero value is an empty
// batch ready to use.
//
// The operations are buffered in Go memory and handed to the library only
// inside Write, so a Batch needs no Close and holds no C memory between
// writes. A Batch is not safe for concurrent modification; one that nobody
// modifies may be written by several goroutines at once.
type Batch struct {
	// data holds every key and value back to back; ops index into it, so that a
	// batch of many small operations is two allocations, not two per operation.
	data []byte
	ops  []batchOp
	// err is the first operation refused on the Go side (a negative TTL),
	// reported by Write, since adding an operation cannot fail.
	err error
}

// batchOp is one operation: data[start:keyEnd] is its key, data[keyEnd:end]
// its value (empty for a delete). A put with a TTL has hasTTL set and ttlMs its
// TTL in milliseconds (0, refused by the library, for one that is not
// positive).
type batchOp struct {
	del, hasTTL        bool
	ttlMs              uint64
	start, keyEnd, end int
}

// NewBatch returns an empty batch.
func NewBatch() *Batch { return new(Batch) }

// Put adds a put of value under key. Both are copied, so the caller may reuse
// them. Sizes and empty keys are checked by Write.
func (b *Batch) Put(key, value []byte) {
	start := len(b.data)
	b.data = append(append(b.data, key...), value...)
	b.ops = append(b.ops, batchOp{start: start, keyEnd: start + len(key), end: len(b.data)})
}

// PutWithTTL adds a put of value under key that expires ttl after the batch is
// written, as DB.PutWithTTL describes. Both are copied. A ttl that is not
// positive, or above 2^31-1 seconds, makes Write fail with ErrInvalidOption
// and write nothing (until Reset).
func (b *Batch) PutWithTTL(key, value []byte, ttl time.Duration) {
	if err := negativeTTL("ttl", ttl); err != nil && b.err == nil {
		b.err = err
	}
	start := len(b.data)
	b.data = append(append(b.data, key...), value...)
	b.ops = append(b.ops, batchOp{
		hasTTL: true, ttlMs: ttlMillis(ttl),
		start: start, keyEnd: start + len(key), end: len(b.data),
	})
}

// Delete adds a delete of key (copied).
func (b *Batch) Delete(key []byte) {
	start := len(b.data)
	b.data = append(b.data, key...)
	b.ops = append(b.ops, batchOp{del: true, start: start, keyEnd: len(b.data), end: len(b.data)})
}

// Len returns the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties the batch, keeping its memory for reuse.
func (b *Batch) Reset() {
	b.data = b.data[:0]
	b.ops = b.ops[:0]
	b.err = nil
}

// toC builds the C batch; the caller destroys it. Its only failure is a NULL
// argument, which cannot happen here, but the status is passed on regardless.
func (b *Batch) toC() (*C.bitcask_batch_t, C.bitcask_status_t) {
	var cb *C.bitcask_batch_t
	if s := C.bitcask_batch_create(&cb); s != C.BITCASK_OK {
		return nil, s
	}
	for _, op := range b.ops {
		key := b.data[op.start:op.keyEnd]
		var s C.bitcask_status_t
		value := b.data[op.keyEnd:op.end]
		switch {
		case op.del:
			s = C.bitcask_batch_delete(cb, bytesPtr(key), C.size_t(len(key)))
		case op.hasTTL:
			s = C.bitcask_batch_put_ttl(cb, bytesPtr(key), C.size_t(len(key)),
				bytesPtr(value), C.size_t(len(value)), C.uint64_t(op.ttlMs))
		default:
			s = C.bitcask_batch_put(cb, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)))
		}
		if s != C.BITCASK_OK {
			C.bitcask_batch_destroy(cb)
			return nil, s
		}
	}
	return cb, C.BITCASK_OK
}
