// Package refname checks repository names against distribution's name
// grammar without a regular expression. The registry matches names on
// every request, and the backtracking regexp was a third of the CPU of a
// signature GET. It must accept exactly what reference.NameRegexp matches
// in full; refname_test.go checks that on a table and under fuzzing.
package refname

// MaxLength is reference.NameTotalLengthMax.
const MaxLength = 255

// Valid reports whether name is a repository name: it matches
// reference.NameRegexp in full and is at most MaxLength bytes.
func Valid(name string) bool {
	return len(name) <= MaxLength && Grammar(name)
}

// Grammar reports whether name matches reference.NameRegexp in full:
//
//	name          := [domainAndPort "/"] pathComponent ("/" pathComponent)*
//	pathComponent := [a-z0-9]+ (separator [a-z0-9]+)*
//	separator     := "." | "_" | "__" | "-"+
//	domainAndPort := (domainName | "[" [a-fA-F0-9:]+ "]") [":" [0-9]+]
//	domainName    := domainComponent ("." domainComponent)*
//	domainComponent := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
func Grammar(name string) bool {
	first, rest, more := cut(name)
	if pathComponent(first) && (!more || remoteName(rest)) {
		return true
	}
	return more && domainAndPort(first) && remoteName(rest)
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func remoteName(s string) bool {
	for {
		c, rest, more := cut(s)
		if !pathComponent(c) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

func lowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

func alnum(b byte) bool { return lowerAlnum(b) || b >= 'A' && b <= 'Z' }

func pathComponent(c string) bool {
	if c == "" || !lowerAlnum(c[0]) || !lowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c); {
		if lowerAlnum(c[i]) {
			i++
			continue
		}
		// A separator, which must be followed by an alphanumeric.
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i >= len(c) || !lowerAlnum(c[i]) {
			return false
		}
	}
	return true
}

func domainAndPort(s string) bool {
	host, port := s, ""
	if len(s) > 0 && s[0] == '[' {
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == ']' {
				end = i
				break
			}
		}
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			b := s[i]
			if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' || b == ':') {
				return false
			}
		}
		host, port = "", s[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else {
		for i := 0; i < len(s); i++ {
			if s[i] == ':' {
				host, port = s[:i], s[i:]
				break
			}
		}
		if !domainName(host) {
			return false
		}
	}
	if port == "" {
		return true
	}
	if len(port) < 2 {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	return true
}

func domainName(s string) bool {
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !domainComponent(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

func domainComponent(c string) bool {
	if c == "" || !alnum(c[0]) || !alnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c)-1; i++ {
		if !alnum(c[i]) && c[i] != '-' {
			return false
		}
	}
	return true
}
