// Package signing holds the keys and signatures of mds: an app team's keys,
// which sign what devices run and never reach the server, and later the
// deployment's own key, which signs answers.
//
// Two algorithms, both verifiable by the platforms' own libraries on every
// Android and iOS version mds supports: ECDSA on P-256 with SHA-256, the
// default, with signatures in ASN.1 DER (X9.62, what Java's
// SHA256withECDSA and Apple's ecdsaSignatureMessageX962SHA256 produce and
// check), and Ed25519, with its 64-byte signatures. Keys are kept in
// standard PEM files: PKCS #8 for private keys, PKIX for public ones. A
// key's ID is the SHA-256 of its PKIX encoding, in hex, so anyone holding
// the public key can compute it.
package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Alg is a signature algorithm.
type Alg string

// The algorithms, by the names the CLI and files use.
const (
	ECDSAP256 Alg = "ecdsa-p256"
	Ed25519   Alg = "ed25519"
)

// Algs are the supported algorithms, the default first.
var Algs = []Alg{ECDSAP256, Ed25519}

// PublicKey verifies signatures.
type PublicKey struct {
	alg  Alg
	id   string
	key  crypto.PublicKey
	pkix []byte
}

// PrivateKey signs; its public half is Public.
type PrivateKey struct {
	signer crypto.Signer
	public *PublicKey
}

// Generate makes a new key pair for alg.
func Generate(alg Alg) (*PrivateKey, error) {
	var signer crypto.Signer
	switch alg {
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		signer = k
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		signer = k
	default:
		return nil, unsupported(alg)
	}
	return privateKey(signer)
}

func unsupported(alg Alg) error {
	return fmt.Errorf("algorithm %q is not supported: use %s (the default) or %s", alg, ECDSAP256, Ed25519)
}

func privateKey(signer crypto.Signer) (*PrivateKey, error) {
	pub, err := publicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	return &PrivateKey{signer: signer, public: pub}, nil
}

// publicKey wraps a parsed public key, refusing kinds and curves mds does
// not sign with.
func publicKey(key crypto.PublicKey) (*PublicKey, error) {
	var alg Alg
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key on %s: only P-256 is supported (or use %s)", k.Curve.Params().Name, Ed25519)
		}
		alg = ECDSAP256
	case ed25519.PublicKey:
		alg = Ed25519
	default:
		return nil, fmt.Errorf("a %T key: only ECDSA P-256 and Ed25519 keys are supported", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &PublicKey{alg: alg, id: hex.EncodeToString(sum[:]), key: key, pkix: der}, nil
}

// Public returns the key's public half.
func (k *PrivateKey) Public() *PublicKey { return k.public }

// Sign signs msg: ECDSA over its SHA-256, in ASN.1 DER; Ed25519 over msg
// itself.
func (k *PrivateKey) Sign(msg []byte) ([]byte, error) {
	if k.public.alg == Ed25519 {
		return k.signer.Sign(nil, msg, crypto.Hash(0))
	}
	sum := sha256.Sum256(msg)
	return k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// ErrBadSignature is what Verify returns for a signature that does not
// match: the message or the signature was changed, or another key signed.
var ErrBadSignature = errors.New("the signature does not match: the content was changed after signing, or another key signed it")

// Verify checks that sig is this key's signature of msg.
func (k *PublicKey) Verify(msg, sig []byte) error {
	ok := false
	switch pub := k.key.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(pub, sum[:], sig)
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, msg, sig)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// Alg is the key's algorithm.
func (k *PublicKey) Alg() Alg { return k.alg }

// ID is the key's ID: the SHA-256 of its PKIX encoding, in hex.
func (k *PublicKey) ID() string { return k.id }

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool { return o != nil && k.id == o.id }

// PEM blocks.
const (
	privateBlock = "PRIVATE KEY"
	publicBlock  = "PUBLIC KEY"
)

// MarshalPEM encodes the private key as a PKCS #8 PEM block.
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateBlock, Bytes: der}), nil
}

// MarshalPEM encodes the public key as a PKIX PEM block.
func (k *PublicKey) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: publicBlock, Bytes: k.pkix})
}

// ParsePrivateKeyPEM reads a private key from a PEM file: PKCS #8, as
// Generate writes, or SEC 1 ("EC PRIVATE KEY", as openssl ecparam writes).
func ParsePrivateKeyPEM(b []byte) (*PrivateKey, error) {
	p, err := block(b, privateBlock, "EC "+privateBlock)
	if err != nil {
		return nil, err
	}
	var key any
	if p.Type == privateBlock {
		key, err = x509.ParsePKCS8PrivateKey(p.Bytes)
	} else {
		key, err = x509.ParseECPrivateKey(p.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("the private key does not parse: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T key: only ECDSA P-256 and Ed25519 keys are supported", key)
	}
	return privateKey(signer)
}

// ParsePublicKeyPEM reads a public key from a PKIX PEM file, as Generate
// writes it beside the private key.
func ParsePublicKeyPEM(b []byte) (*PublicKey, error) {
	p, err := block(b, publicBlock)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(p.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the public key does not parse: %w", err)
	}
	return publicKey(key)
}

// block returns the one PEM block of b, which must be of one of the types.
func block(b []byte, types ...string) (*pem.Block, error) {
	p, rest := pem.Decode(b)
	switch {
	case p == nil:
		return nil, fmt.Errorf("not a PEM file: expected a block starting -----BEGIN %s-----", types[0])
	case !slices.Contains(types, p.Type):
		hint := ""
		switch {
		case strings.Contains(p.Type, "PRIVATE KEY"):
			hint = ": this is a private key; give the public one (the .pub.pem file)"
		case p.Type == publicBlock:
			hint = ": this is a public key; give the private one"
		}
		return nil, fmt.Errorf("a PEM block of type %q where %q was expected%s", p.Type, types[0], hint)
	case len(p.Headers) > 0:
		return nil, errors.New("the PEM block has headers, as an encrypted key does: give an unencrypted PKCS #8 key (openssl pkcs8 -topk8 -nocrypt)")
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errors.New("the file holds more than one PEM block: give one key per file")
	}
	return p, nil
}
