package delta

// suffixArray returns the start offsets of all suffixes of text in lexicographic order. It uses SA-IS
// (Nong, Zhang and Chan, 2009): linear time, which keeps Encode at a few seconds on a 20 MB package
// where bsdiff's qsufsort takes tens. The standard library builds the same array in index/suffixarray
// but does not expose it.
func suffixArray(text []byte) []int32 {
	sa := make([]int32, len(text))
	sais(text, sa, 256)
	return sa
}

// sais fills sa with the suffix array of s, whose symbols lie in [0, k). The end of s acts as a
// virtual sentinel smaller than every symbol, so callers need not append one.
func sais[T byte | int32](s []T, sa []int32, k int) {
	n := len(s)
	switch n {
	case 0:
		return
	case 1:
		sa[0] = 0
		return
	}

	// stype[i] reports whether suffix i is smaller than suffix i+1. The last suffix is larger than
	// the sentinel's, so it is L-type.
	stype := make([]bool, n)
	for i := n - 2; i >= 0; i-- {
		stype[i] = s[i] < s[i+1] || s[i] == s[i+1] && stype[i+1]
	}
	lms := func(i int) bool { return i > 0 && stype[i] && !stype[i-1] }

	count := make([]int32, k)
	for _, c := range s {
		count[c]++
	}
	bucket := make([]int32, k)
	heads := func() {
		var sum int32
		for c, m := range count {
			bucket[c] = sum
			sum += m
		}
	}
	tails := func() {
		var sum int32
		for c, m := range count {
			sum += m
			bucket[c] = sum
		}
	}
	// induce sorts the L-type then the S-type suffixes from the LMS suffixes already placed at the
	// ends of their buckets; every other slot holds -1.
	induce := func() {
		heads()
		c := s[n-1] // the suffix the sentinel precedes
		sa[bucket[c]] = int32(n - 1)
		bucket[c]++
		for i := 0; i < n; i++ {
			if j := sa[i] - 1; j >= 0 && !stype[j] {
				c := s[j]
				sa[bucket[c]] = j
				bucket[c]++
			}
		}
		tails()
		for i := n - 1; i >= 0; i-- {
			if j := sa[i] - 1; j >= 0 && stype[j] {
				c := s[j]
				bucket[c]--
				sa[bucket[c]] = j
			}
		}
	}

	// Sort the LMS substrings by one induction from their unsorted positions.
	for i := range sa {
		sa[i] = -1
	}
	tails()
	for i := n - 1; i > 0; i-- {
		if lms(i) {
			c := s[i]
			bucket[c]--
			sa[bucket[c]] = int32(i)
		}
	}
	induce()

	// Name the LMS substrings by rank, equal substrings sharing a name. LMS positions are at least two
	// apart, so sa[m+p/2] is a free slot for the name of the substring at p.
	m := 0
	for i := 0; i < n; i++ {
		if lms(int(sa[i])) {
			sa[m] = sa[i]
			m++
		}
	}
	for i := m; i < n; i++ {
		sa[i] = -1
	}
	names, prev := 0, -1
	for i := 0; i < m; i++ {
		p := int(sa[i])
		if prev < 0 || !equalLMS(s, stype, prev, p) {
			names++
			prev = p
		}
		sa[m+p/2] = int32(names - 1)
	}
	reduced := make([]int32, 0, m)
	for i := m; i < n; i++ {
		if sa[i] >= 0 {
			reduced = append(reduced, sa[i])
		}
	}

	// Sort the LMS suffixes: recurse on the string of names unless the names are already unique. The
	// last LMS substring runs into the sentinel, so its name is unique and the recursion's own
	// sentinel never decides a comparison.
	order := make([]int32, m)
	if names < m {
		sais(reduced, order, names)
	} else {
		for i, c := range reduced {
			order[c] = int32(i)
		}
	}
	pos := reduced[:0]
	for i := 1; i < n; i++ {
		if lms(i) {
			pos = append(pos, int32(i))
		}
	}
	for i, r := range order {
		order[i] = pos[r]
	}

	// Induce the whole array from the sorted LMS suffixes.
	for i := range sa {
		sa[i] = -1
	}
	tails()
	for i := m - 1; i >= 0; i-- {
		p := order[i]
		c := s[p]
		bucket[c]--
		sa[bucket[c]] = p
	}
	induce()
}

// equalLMS reports whether the LMS substrings starting at a and b are equal. One that reaches the
// sentinel is unique.
func equalLMS[T byte | int32](s []T, stype []bool, a, b int) bool {
	n := len(s)
	for d := 0; ; d++ {
		if a+d == n || b+d == n {
			return false
		}
		if s[a+d] != s[b+d] || stype[a+d] != stype[b+d] {
			return false
		}
		if d > 0 && stype[a+d] && !stype[a+d-1] {
			// Equal symbols and types so far, so b's substring ends here too.
			return true
		}
	}
}
