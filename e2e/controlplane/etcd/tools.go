//go:build tools

// Package tools records the commands built from this module, so that
// `go mod tidy` keeps their dependencies in go.mod and go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3"
