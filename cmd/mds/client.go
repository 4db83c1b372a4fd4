package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// apiClient calls the management API on behalf of a CLI command.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags adds --server and --token to cmd and returns a constructor
// for the client they describe.
func clientFlags(cmd *cobra.Command) func() (*apiClient, error) {
	var server, token string
	f := cmd.PersistentFlags()
	f.StringVar(&server, "server", env("MDS_SERVER", "http://127.0.0.1:8080"), "mds server URL (MDS_SERVER)")
	f.StringVar(&token, "token", "", "API token; prefer the MDS_TOKEN environment variable, which stays out of process lists")
	return func() (*apiClient, error) {
		if token == "" {
			token = env("MDS_TOKEN", "")
		}
		if token == "" {
			return nil, fmt.Errorf("no token: set MDS_TOKEN (mds serve prints the admin token on first start)")
		}
		// Uploads run as long as they need; only connecting and waiting for
		// headers are bounded.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 10 * time.Minute
		return &apiClient{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{Transport: tr}}, nil
	}
}

// apiError is a problem response from the server.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Message  string `json:"message"`
		Location string `json:"location"`
	} `json:"errors"`
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	for _, d := range e.Errors {
		msg += "\n  " + strings.TrimSpace(d.Location+" "+d.Message)
	}
	return msg
}

// do sends in (if not nil) as JSON, decodes the answer into out (if not
// nil) and returns it as received.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req, out)
}

// maxAnswer bounds what the CLI reads of one answer.
const maxAnswer = 64 << 20

func (c *apiClient) send(req *http.Request, out any) ([]byte, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the mds server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the server's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &apiError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(b, e) != nil && len(b) > 0 {
			e.Detail = strings.TrimSpace(string(b))
		}
		return nil, e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("the server's answer is not what this CLI expects: %w", err)
		}
	}
	return b, nil
}
