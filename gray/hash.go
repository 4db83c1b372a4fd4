package gray

// The hashes here are part of the contract: a device's bucket must be the
// same on every node and after every upgrade, and SDKs or tools may want to
// compute it too. Definition: FNV-1a (64-bit) over the bytes, finished by the
// SplitMix64 mixer so that similar IDs spread evenly.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Hash is the 64-bit hash of an identifier, as whitelists store it.
func Hash(id string) uint64 { return mix(fnvString(fnvOffset, id)) }

// Buckets is how many buckets a rollout divides devices into: 0.01% each.
const Buckets = 10000

// Bucket places id in one of 10,000 buckets, stable for a given salt:
// FNV-1a over salt, ":", id, mixed, modulo 10,000. A rollout of p basis
// points admits buckets 0 to p-1, so raising p only ever adds devices.
func Bucket(salt, id string) int {
	h := fnvString(fnvOffset, salt)
	h = fnvString(h, ":")
	h = fnvString(h, id)
	return int(mix(h) % Buckets)
}
