package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Clone deep-copies c through its JSON form, the same form graymesh keeps
// in its state directory, so a config that survives Clone survives a
// restart.
func (c *Config) Clone() (*Config, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	out := &Config{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	out.Source = c.Source
	return out, nil
}

// EffectiveHash identifies the content of a config in force, whatever its
// version, source, file hash or declared change: two nodes with the same
// file and the same operations on it have the same.
func (c *Config) EffectiveHash() string {
	cc, _ := c.Clone()
	cc.Version, cc.Content, cc.Source, cc.Change = "", "", "", Change{}
	b, _ := json.Marshal(cc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
