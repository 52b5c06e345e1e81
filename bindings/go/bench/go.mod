module github.com/libbitcask/libbitcask/bindings/go/bench

go 1.25.0

// The binding is taken from this tree, so the figures are for the engine as
// built here (make build), not a released version.
replace github.com/libbitcask/libbitcask/bindings/go => ../

require (
	github.com/libbitcask/libbitcask/bindings/go v0.0.0-00010101000000-000000000000
	github.com/nutsdb/nutsdb v1.0.4
	github.com/rosedblabs/rosedb/v2 v2.3.6
	go.etcd.io/bbolt v1.5.0
	go.mills.io/bitcask/v2 v2.1.3
)

require (
	github.com/abcum/lcp v0.0.0-20201209214815-7a3f3840be81 // indirect
	github.com/antlabs/stl v0.0.1 // indirect
	github.com/antlabs/timer v0.0.11 // indirect
	github.com/bwmarrin/snowflake v0.3.0 // indirect
	github.com/gofrs/flock v0.8.1 // indirect
	github.com/google/btree v1.1.2 // indirect
	github.com/hashicorp/go-immutable-radix/v2 v2.0.0 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/mattetti/filebuffer v1.0.1 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/robfig/cron/v3 v3.0.0 // indirect
	github.com/rosedblabs/wal v1.3.6-0.20230924022528-3202245af020 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/tidwall/btree v1.7.0 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/xujiajun/mmap-go v1.0.1 // indirect
	github.com/xujiajun/utils v0.0.0-20220904132955-5f7c5b914235 // indirect
	golang.org/x/exp v0.0.0-20240506185415-9bf2ced13842 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
