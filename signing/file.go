package signing

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreate reads the private key in the PEM file at path, creating it
// with a new key of alg if there is none. Nodes that share the directory
// and start together agree on one key: the key is written to a temporary
// file, synced, and linked into place, which fails if another node's key
// is there already, and then that one is read. No node ever reads a
// half-written key.
func LoadOrCreate(path string, alg Alg) (k *PrivateKey, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err = Generate(alg)
	if err != nil {
		return nil, false, err
	}
	b, err := k.MarshalPEM()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		k, _, err := LoadOrCreate(path, alg)
		return k, false, err
	} else if err != nil {
		return nil, false, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return k, true, nil
}

// ParsePublicKeysPEM reads one or more public keys in PEM, one after
// another, as `mds keys server-public` prints the deployment's keys.
func ParsePublicKeysPEM(b []byte) ([]*PublicKey, error) {
	var keys []*PublicKey
	rest := b
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, fmt.Errorf("after %d keys the file holds something that is not PEM", len(keys))
		}
		k, err := ParsePublicKeyPEM(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no public key in PEM found")
	}
	return keys, nil
}
