package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// The yardstick: what serving a small JSON document over net/http costs,
// done the ordinary way. It decodes the same ~300-byte device body into a
// struct with encoding/json and encodes a ~200-byte struct answer, and
// does nothing else.

type bareDevice struct {
	AppKey     string            `json:"app_key"`
	Platform   string            `json:"platform"`
	AppVersion string            `json:"app_version"`
	Build      int64             `json:"build"`
	DeviceID   string            `json:"device_id"`
	UserID     string            `json:"user_id"`
	Model      string            `json:"model"`
	Brand      string            `json:"brand"`
	OSVersion  string            `json:"os_version"`
	Network    string            `json:"network"`
	Region     string            `json:"region"`
	City       string            `json:"city"`
	Channel    string            `json:"channel"`
	Language   string            `json:"language"`
	Attributes map[string]string `json:"attributes"`
}

type bareUpgrade struct {
	TaskID  int64  `json:"task_id"`
	Version string `json:"version"`
	Mode    string `json:"mode"`
	Remind  bool   `json:"remind"`
	Notes   string `json:"notes"`
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	Network string `json:"network"`
}

type bareAnswer struct {
	Upgrade *bareUpgrade `json:"upgrade"`
}

func bareCheck(w http.ResponseWriter, r *http.Request) {
	var d bareDevice
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(bareAnswer{Upgrade: &bareUpgrade{TaskID: 7, Version: "2.1.0", Mode: "single", Remind: true,
		Notes: "Bug fixes and a faster start.", URL: "http://127.0.0.1/client/v1/blobs/" + d.DeviceID, Size: 48 << 20, Network: "any"}})
}

// serveBare runs the bare server on a free loopback port and prints its
// address on standard output, for the benchmark that started it.
func serveBare() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", bareCheck)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}
