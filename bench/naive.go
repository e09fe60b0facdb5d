package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// runNaivePut is the durable-PUT baseline: what a first implementation
// would do. It decodes the body and stores it with one bbolt Update (one
// commit, fsync on) per request. It is the only bbolt user outside
// boltstore, and exists only to be measured against.
func runNaivePut(args []string) error {
	fs := flag.NewFlagSet("naive-put", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	path := fs.String("db", "", "database file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("-db is required")
	}
	db, err := bolt.Open(*path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	bucket := []byte("signatures")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("PUT /extensions/v2/", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/signatures/") {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var sig struct {
			SchemaVersion int    `json:"schemaVersion"`
			Name          string `json:"name"`
			Type          string `json:"type"`
			Content       []byte `json:"content"`
		}
		if err := json.Unmarshal(body, &sig); err != nil || sig.Name == "" || len(sig.Content) == 0 {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			if b.Get([]byte(sig.Name)) != nil {
				return errors.New("exists")
			}
			return b.Put([]byte(sig.Name), []byte(base64.StdEncoding.EncodeToString(sig.Content)))
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
