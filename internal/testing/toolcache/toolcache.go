// Package toolcache finds the real parts the project's install scripts
// (scripts/install-*.sh) build or unpack into the graymesh cache, outside
// the repository: $GRAYMESH_CACHE, else the user cache directory's
// graymesh/.
package toolcache

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is the graymesh cache directory.
func Dir() (string, error) {
	if cache := os.Getenv("GRAYMESH_CACHE"); cache != "" {
		return cache, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "graymesh"), nil
}

// Find returns the binary named by the environment variable env when set,
// else the cache's dir/bin (e.g. "helm-v4.3.2", "helm") — or an error
// naming where it looked.
func Find(env, dir, bin string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	cache, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, dir, bin)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no %s at %s (nor $%s)", bin, p, env)
	}
	return p, nil
}
