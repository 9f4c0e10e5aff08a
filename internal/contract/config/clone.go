package config

import "encoding/json"

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
