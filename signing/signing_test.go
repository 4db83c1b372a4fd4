package signing_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mds-dev/mds/signing"
)

func TestSignVerifyAndPEM(t *testing.T) {
	msg := []byte(`{"app":"shop","patch_version":3}`)
	for _, alg := range signing.Algs {
		k, err := signing.Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Public().Verify(msg, sig); err != nil {
			t.Errorf("%s: own signature refused: %v", alg, err)
		}
		tampered := append([]byte{}, msg...)
		tampered[5] ^= 1
		if err := k.Public().Verify(tampered, sig); !errors.Is(err, signing.ErrBadSignature) {
			t.Errorf("%s: a changed message verified: %v", alg, err)
		}
		other, _ := signing.Generate(alg)
		if err := other.Public().Verify(msg, sig); !errors.Is(err, signing.ErrBadSignature) {
			t.Errorf("%s: another key's signature verified: %v", alg, err)
		}

		// Through PEM files and back: the same key, the same ID, and the
		// ID is the SHA-256 of the public key's PKIX bytes.
		privPEM, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		priv, err := signing.ParsePrivateKeyPEM(privPEM)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		pub, err := signing.ParsePublicKeyPEM(k.Public().MarshalPEM())
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if !pub.Equal(k.Public()) || !priv.Public().Equal(pub) || pub.Alg() != alg || pub.Equal(other.Public()) {
			t.Errorf("%s: keys differ after a PEM round trip", alg)
		}
		block, _ := pem.Decode(k.Public().MarshalPEM())
		sum := sha256.Sum256(block.Bytes)
		if id := pub.ID(); len(id) != 64 || id != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: ID %q is not the SHA-256 of the PKIX key", alg, id)
		}
		sig2, _ := priv.Sign(msg)
		if err := pub.Verify(msg, sig2); err != nil {
			t.Errorf("%s: the parsed key's signature refused: %v", alg, err)
		}
	}
}

// TestECDSAIsX962: an ECDSA signature is ASN.1 DER over SHA-256, which the
// platforms' verifiers (SHA256withECDSA, ecdsaSignatureMessageX962SHA256)
// check; and such a signature made elsewhere verifies here.
func TestECDSAIsX962(t *testing.T) {
	raw, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(raw)
	k, err := signing.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("manifest bytes")
	sum := sha256.Sum256(msg)
	sig, _ := k.Sign(msg)
	if !ecdsa.VerifyASN1(&raw.PublicKey, sum[:], sig) {
		t.Error("the signature is not X9.62 DER over SHA-256")
	}
	theirs, _ := ecdsa.SignASN1(rand.Reader, raw, sum[:])
	if err := k.Public().Verify(msg, theirs); err != nil {
		t.Errorf("an X9.62 signature made elsewhere refused: %v", err)
	}
	// openssl ecparam writes SEC 1 ("EC PRIVATE KEY"): read too.
	sec1, _ := x509.MarshalECPrivateKey(raw)
	if k2, err := signing.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err != nil || !k2.Public().Equal(k.Public()) {
		t.Errorf("SEC 1 key: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	if _, err := signing.Generate("rsa"); err == nil || !strings.Contains(err.Error(), "ecdsa-p256") {
		t.Errorf("Generate(rsa) = %v; want a refusal naming what is supported", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	k, _ := signing.Generate(signing.ECDSAP256)
	priv, _ := k.MarshalPEM()
	pub := k.Public().MarshalPEM()
	for _, c := range []struct {
		name, in, want string
		private        bool
	}{
		{"garbage", "hello", "not a PEM file", false},
		{"private given as public", string(priv), "give the public one", false},
		{"public given as private", string(pub), "give the private one", true},
		{"two keys", string(pub) + string(pub), "more than one PEM block", false},
		{"P-384", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p384DER})), "only P-256", false},
		{"RSA", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})), "only ECDSA P-256 and Ed25519", false},
		{"encrypted", "-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END PRIVATE KEY-----\n", "encrypted", true},
		{"corrupt", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "does not parse", false},
	} {
		var err error
		if c.private {
			_, err = signing.ParsePrivateKeyPEM([]byte(c.in))
		} else {
			_, err = signing.ParsePublicKeyPEM([]byte(c.in))
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "answer-key.pem")
	// Nodes starting together agree on one key.
	keys := make([]*signing.PrivateKey, 8)
	created := make([]bool, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			var err error
			if keys[i], created[i], err = signing.LoadOrCreate(path, signing.ECDSAP256); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for i, k := range keys {
		if k == nil || !k.Public().Equal(keys[0].Public()) {
			t.Fatalf("node %d has another key", i)
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d nodes say they created the key; one did", n)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	again, made, err := signing.LoadOrCreate(path, signing.Ed25519)
	if err != nil || made || !again.Public().Equal(keys[0].Public()) {
		t.Errorf("a restart reads the key it has: %v, created %v", err, made)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := signing.LoadOrCreate(path, signing.ECDSAP256); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a corrupt key file must be refused, naming it: %v", err)
	}
}

func TestParsePublicKeysPEM(t *testing.T) {
	var all []byte
	var want []string
	for _, alg := range signing.Algs {
		k, err := signing.Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, k.Public().MarshalPEM()...)
		want = append(want, k.Public().ID())
	}
	keys, err := signing.ParsePublicKeysPEM(all)
	if err != nil || len(keys) != 2 || keys[0].ID() != want[0] || keys[1].ID() != want[1] {
		t.Fatalf("two keys in one file: %v, %d keys", err, len(keys))
	}
	for name, b := range map[string][]byte{"empty": nil, "junk": []byte("junk"), "junk after": append(all, "x"...)} {
		if _, err := signing.ParsePublicKeysPEM(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkSign and BenchmarkVerify measure a signature of a check answer's
// size: what signing an answer anew costs the server once a period, and
// what verifying it costs a device at each answer.
func BenchmarkSign(b *testing.B) {
	for _, alg := range signing.Algs {
		b.Run(string(alg), func(b *testing.B) {
			k, err := signing.Generate(alg)
			if err != nil {
				b.Fatal(err)
			}
			msg := []byte(strings.Repeat("a", 600))
			for b.Loop() {
				if _, err := k.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range signing.Algs {
		b.Run(string(alg), func(b *testing.B) {
			k, err := signing.Generate(alg)
			if err != nil {
				b.Fatal(err)
			}
			msg := []byte(strings.Repeat("a", 600))
			sig, err := k.Sign(msg)
			if err != nil {
				b.Fatal(err)
			}
			pub := k.Public()
			for b.Loop() {
				if err := pub.Verify(msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
