module github.com/libbitcask/libbitcask/bindings/go

go 1.24
