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

// IsCommon reports whether password, lower-cased, is one of the 10,000 most
// common passwords. Signup refuses these (NIST SP 800-63B asks verifiers to
// reject passwords found in breach corpora): they fall to the first guesses of
// any online or offline attack whatever the hash. Case is ignored because
// "Password" is guessed as early as "password".
func IsCommon(password string) bool {
	_, ok := commonPasswords()[strings.ToLower(password)]
	return ok
}
