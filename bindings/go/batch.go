package bitcask

// #include <bitcask.h>
import "C"

// Batch collects puts and deletes that DB.Write applies atomically; a later
// operation on the same key wins. The zero value is an empty batch ready to use.
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
}

// batchOp is one operation: data[start:keyEnd] is its key, data[keyEnd:end]
// its value (empty for a delete).
type batchOp struct {
	del                bool
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
		if op.del {
			s = C.bitcask_batch_delete(cb, bytesPtr(key), C.size_t(len(key)))
		} else {
			value := b.data[op.keyEnd:op.end]
			s = C.bitcask_batch_put(cb, bytesPtr(key), C.size_t(len(key)), bytesPtr(value), C.size_t(len(value)))
		}
		if s != C.BITCASK_OK {
			C.bitcask_batch_destroy(cb)
			return nil, s
		}
	}
	return cb, C.BITCASK_OK
}
