package server

import (
	"net/url"
	"strings"
	"testing"
)

// TestValidateSlug is part of finding 6 of issue 7: slugs that walk out of
// a path ("../..", "a/..") or are otherwise malformed are refused with a
// message saying what is valid.
func TestValidateSlug(t *testing.T) {
	for _, ok := range []string{"acme/app", "a/b", "Acme_1/app.v2", "owner/.github", "o/a-b", "_x/y"} {
		if err := validateSlug(ok); err != nil {
			t.Errorf("validateSlug(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"", "acme", "../..", "a/..", "../b", "./b", "a/.", "a//b", "/a/b", "a/b/", "a/b/c",
		"-x/y", "x/-y", "a/b\x00", "a\x00/b", "a/b\n", "a b/c", "a/" + strings.Repeat("n", 101), "ä/b",
	} {
		err := validateSlug(bad)
		if err == nil {
			t.Errorf("validateSlug(%q) accepted it", bad)
			continue
		}
		if !strings.Contains(err.Error(), "must be OWNER/NAME") || !strings.Contains(err.Error(), "neither '.' nor '..'") {
			t.Errorf("validateSlug(%q) = %q; want it to say what is valid", bad, err)
		}
	}
}

// TestCheckGitURL is part of finding 6 of issue 7: only URLs that run no
// command on the server are accepted; "ext::" is refused with a message
// that names it.
func TestCheckGitURL(t *testing.T) {
	for _, ok := range []string{
		"https://github.com/acme/app.git", "http://git.local/acme/app", "ssh://git@host:2222/acme/app.git",
		"git://host/acme/app", "file:///srv/git/app.git", "git@github.com:acme/app.git", "host.example:acme/app",
		"git@[::1]:acme/app",
	} {
		if err := checkGitURL(ok); err != nil {
			t.Errorf("checkGitURL(%q) = %v, want nil", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"ext::touch\x01/x":            "control character",
		"ext::sh -c touch% /tmp/pwn":  "white space",
		"ext::sh%20-c%20id":           `"ext" remote helper`,
		"fd::17":                      `"fd" remote helper`,
		"ftp://host/x.git":            `scheme "ftp" is not allowed`,
		"https://":                    "no host",
		"https://host":                "no repository path",
		"-uhttps://x/y":               "must not start with '-'",
		"/srv/git/app.git":            "must be an https, http, ssh or git URL",
		"host:":                       "must be an https",
		"a/b:c":                       "must be an https",
		"https://host/a\nb":           "control character",
		"git@host::x":                 "must be an https",
		"":                            "required",
		"https://host/%zz":            "not a valid URL",
		"git@-oProxyCommand=x:a/b":    "must be an https",
		"user@host:path\x7f":          "control character",
		"transport+ssh::user@host:/x": `"transport+ssh" remote helper`,
		// git would take a host or user starting with '-' for an option
		// of ssh (CVE-2017-1000117); git refuses it too, but only since
		// 2.14.1, and the server refuses it at once.
		"ssh://-oProxyCommand=touch/x":    "host or user",
		"ssh://-oProxyCommand=x@host/a/b": "host or user",
		"git+ssh://-oProxyCommand=x/y":    `scheme "git+ssh" is not allowed`,
		"https://-host.example/acme/app":  "host or user",
	} {
		err := checkGitURL(bad)
		if err == nil {
			t.Errorf("checkGitURL(%q) accepted it", bad)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("checkGitURL(%q) = %q; want it to mention %q", bad, err, want)
		}
	}
}

// FuzzValidateSlug checks that validateSlug never panics, and that what it
// accepts is OWNER/NAME with no path trick or control character in it.
func FuzzValidateSlug(f *testing.F) {
	for _, s := range []string{"acme/app", "../..", "a/..", "a//b", "a/b\x00", "owner/.github", "-a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, slug string) {
		if validateSlug(slug) != nil {
			return
		}
		owner, name, _ := strings.Cut(slug, "/")
		for _, p := range []string{owner, name} {
			if p == "" || p == "." || p == ".." || strings.HasPrefix(p, "-") || strings.ContainsAny(p, "/\\\x00\n ") {
				t.Fatalf("accepted slug %q has a bad part %q", slug, p)
			}
		}
		if u, err := url.Parse("https://x/hook/" + slug); err != nil || u.Path != "/hook/"+slug {
			t.Fatalf("accepted slug %q does not survive a URL path", slug)
		}
	})
}

// FuzzCheckGitURL checks that checkGitURL never panics, and that what it
// accepts has no control character, no leading '-', no remote helper and
// an allowed scheme.
func FuzzCheckGitURL(f *testing.F) {
	for _, s := range []string{
		"https://github.com/acme/app.git", "git@github.com:acme/app.git", "ext::sh -c id", "file:///srv/x.git",
		"ssh://h/x", "ssh://-oProxyCommand=x/y", "fd::3", "host:path", "git@[::1]:x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkGitURL(s) != nil {
			return
		}
		if strings.HasPrefix(s, "-") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
			t.Fatalf("accepted %q starts with '-' or holds a control character or a space", s)
		}
		if transportRE().MatchString(s) {
			t.Fatalf("accepted %q uses a remote helper", s)
		}
		if strings.Contains(s, "://") {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("accepted %q does not parse: %v", s, err)
			}
			switch u.Scheme {
			case "http", "https", "ssh", "git", "file":
			default:
				t.Fatalf("accepted %q has scheme %q", s, u.Scheme)
			}
			if strings.HasPrefix(u.Hostname(), "-") || strings.HasPrefix(u.User.Username(), "-") {
				t.Fatalf("accepted %q has a host or user that ssh would take for an option", s)
			}
		}
	})
}
