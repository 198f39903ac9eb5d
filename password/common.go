package password

// common-passwords.txt is Passwords/Common-Credentials/10k-most-common.txt
// from SecLists (https://github.com/danielmiessler/SecLists, commit
// 4f84b3c29b5f2192cc82ccdeaf655f0c5f0ab547): the 10,000 passwords most often
// seen in leaked credential dumps, one a line, most common first. The copy
// differs only in line endings (LF instead of CRLF); every entry is distinct,
// lower-case ASCII. SecLists is under the MIT licence, whose notice follows:
//
//	MIT License
//
//	Copyright (c) 2025 Daniel Miessler
//
//	Permission is hereby granted, free of charge, to any person obtaining a copy
//	of this software and associated documentation files (the "Software"), to deal
//	in the Software without restriction, including without limitation the rights
//	to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
//	copies of the Software, and to permit persons to whom the Software is
//	furnished to do so, subject to the following conditions:
//
//	The above copyright notice and this permission notice shall be included in all
//	copies or substantial portions of the Software.
//
//	THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
//	IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
//	FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
//	AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
//	LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
//	OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
//	SOFTWARE.

import (
	_ "embed"
	"strings"
	"sync"
)

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords is the lower-cased set of common passwords, built on first
// use so that binaries that never check pay nothing at start-up.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 10000)
	for line := range strings.Lines(commonPasswordsText) {
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			set[strings.ToLower(line)] = struct{}{}
		}
	}
	return set
})

// IsCommon reports whether password is too common to accept. Signup
// refuses these (NIST SP 800-63B asks verifiers to reject passwords found in
// breach corpora, dictionary words, and repetitive or sequential
// characters): they fall to the first guesses of any online or offline
// attack whatever the hash. It is common when, lower-cased (case is ignored
// because "Password" is guessed as early as "password"),
//
//   - it is one of the 10,000 most common passwords;
//   - it is one of those with only digits and punctuation before or after
//     it ("password1234", "!qwerty2024"): the list holds few passwords as
//     long as the minimum length, and these are the first variations a
//     cracker tries;
//   - it is a short unit repeated ("aaaaaaaaaaaa", "abcabcabcabc") or a run
//     of consecutive characters ("123456789012", "abcdefghijkl").
func IsCommon(password string) bool {
	p := strings.ToLower(password)
	set := commonPasswords()
	if _, ok := set[p]; ok {
		return true
	}
	if core := strings.TrimFunc(p, decoration); core != p && core != "" {
		if _, ok := set[core]; ok {
			return true
		}
	}
	return repeated(p) || consecutive(p)
}

// decoration is what a common password is padded with: digits and ASCII
// punctuation.
func decoration(r rune) bool {
	return r >= '0' && r <= '9' || r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// repeated reports whether p is a unit of at most four characters repeated.
func repeated(p string) bool {
	rs := []rune(p)
	for unit := 1; unit <= 4 && unit < len(rs); unit++ {
		if len(rs)%unit != 0 {
			continue
		}
		same := true
		for i := unit; i < len(rs) && same; i++ {
			same = rs[i] == rs[i-unit]
		}
		if same {
			return true
		}
	}
	return false
}

// consecutive reports whether p, of three characters or more, runs: each
// character follows the one before it, upwards or downwards, digits
// wrapping from 9 to 0 ("1234567890") as a keyboard's row does.
func consecutive(p string) bool {
	rs := []rune(p)
	if len(rs) < 3 {
		return false
	}
	next := func(a, b, step rune) bool {
		if b == a+step {
			return true
		}
		return step == 1 && a == '9' && b == '0' || step == -1 && a == '0' && b == '9'
	}
	for _, step := range []rune{1, -1} {
		ok := true
		for i := 1; i < len(rs) && ok; i++ {
			ok = next(rs[i-1], rs[i], step)
		}
		if ok {
			return true
		}
	}
	return false
}
