//go:build !nogzip

package main

// A real collector accepts gzip-compressed gRPC; register the codec so the
// sink does too. Built with -tags nogzip, the sink is a server without it,
// which answers a gzip request UNIMPLEMENTED as grpc-go does.
import _ "google.golang.org/grpc/encoding/gzip"
