package loadbench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
)

// luaSource is L1's filter: graymesh's bucketing done inside Envoy. The
// subject is the `sub` claim of a token Envoy's jwt_authn filter verified
// (payload_in_metadata); the bucket is graymesh's own, bit for bit:
// xxHash64(salt || 0x00 || subject), seed 0, top 32 bits scaled to 10,000
// buckets (docs/bucketing.md). xxHash64 is written here in LuaJIT with
// 64-bit FFI integers (uint64_t arithmetic wraps like Go's), so the harness
// can hold L1 to exactly the routing graymesh produces.
const luaXXH64 = `
local ffi = require("ffi")
local bit = require("bit")
local rol, bxor, rshift = bit.rol, bit.bxor, bit.rshift
local P1 = 11400714785074694791ULL
local P2 = 14029467366897019727ULL
local P3 = 1609587929392839161ULL
local P4 = 9650029242287828579ULL
local P5 = 2870177450012600261ULL
local bytes = ffi.typeof("const uint8_t *")
local u32s = ffi.typeof("const uint32_t *")
local u64s = ffi.typeof("const uint64_t *")

local function round(acc, lane)
  return rol(acc + lane * P2, 31) * P1
end

local function merge(h, v)
  return bxor(h, round(0ULL, v)) * P1 + P4
end

-- xxh64 hashes s with seed 0 and returns a uint64_t.
local function xxh64(s)
  local n = #s
  local p = ffi.cast(bytes, s)
  local i = 0
  local h
  if n >= 32 then
    local v1, v2, v3, v4 = P1 + P2, P2 + 0ULL, 0ULL, 0ULL - P1
    while i + 32 <= n do
      v1 = round(v1, ffi.cast(u64s, p + i)[0])
      v2 = round(v2, ffi.cast(u64s, p + i + 8)[0])
      v3 = round(v3, ffi.cast(u64s, p + i + 16)[0])
      v4 = round(v4, ffi.cast(u64s, p + i + 24)[0])
      i = i + 32
    end
    h = rol(v1, 1) + rol(v2, 7) + rol(v3, 12) + rol(v4, 18)
    h = merge(merge(merge(merge(h, v1), v2), v3), v4)
  else
    h = P5 + 0ULL
  end
  h = h + n
  while i + 8 <= n do
    h = rol(bxor(h, round(0ULL, ffi.cast(u64s, p + i)[0])), 27) * P1 + P4
    i = i + 8
  end
  if i + 4 <= n then
    h = rol(bxor(h, ffi.cast(u32s, p + i)[0] * P1), 23) * P2 + P3
    i = i + 4
  end
  while i < n do
    h = rol(bxor(h, p[i] * P5), 11) * P1
    i = i + 1
  end
  h = bxor(h, rshift(h, 33)) * P2
  h = bxor(h, rshift(h, 29)) * P3
  return bxor(h, rshift(h, 32))
end

-- bucket is graymesh's gray.Bucket: 0 <= bucket < 10000.
local function bucket(salt, key)
  return tonumber(rshift(rshift(xxh64(salt .. "\0" .. key), 32) * 10000ULL, 32))
end
`

const luaDecide = `
function envoy_on_request(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("envoy.filters.http.jwt_authn")
  local payload = meta and meta["jwt"]
  local sub = payload and payload["sub"]
  local headers = handle:headers()
  if type(sub) ~= "string" or sub == "" then
    headers:replace("x-gray-reason", "no-identity")
    return
  end
  local env, reason
  if BLACKLIST[sub] then
    env, reason = "stable", "blacklisted"
  elseif WHITELIST[sub] then
    env, reason = ENV, "whitelist"
  elseif bucket(SALT, sub) < BASIS_POINTS then
    env, reason = ENV, "percent"
  else
    env, reason = "stable", "not-selected"
  end
  -- The filter clears the route cache itself when headers change
  -- (clear_route_cache defaults to true), so the router sees x-gray-env.
  headers:replace("x-gray-env", env)
  headers:replace("x-gray-release", RELEASE)
  headers:replace("x-gray-reason", reason)
  headers:replace("x-gray-version", VERSION)
end
`

// luaFilterSource renders L1's Lua for the first release of cfg: the same
// blacklist, whitelist, salt and percentage graymesh decides with.
func luaFilterSource(cfg *config.Config) (string, error) {
	if len(cfg.Releases) != 1 {
		return "", fmt.Errorf("the Lua filter mirrors exactly one release, the config has %d", len(cfg.Releases))
	}
	r := cfg.Releases[0]
	if len(r.Claims)+len(r.CIDRs)+len(r.Headers)+len(r.Schedule) > 0 || r.TrafficPercent > 0 {
		return "", fmt.Errorf("release %s: the Lua filter mirrors only blacklist, whitelist and percent", r.Name)
	}
	salt := r.Salt
	if salt == "" {
		salt = r.Name
	}
	set := func(names []string) string {
		s := append([]string(nil), names...)
		sort.Strings(s)
		var b strings.Builder
		b.WriteString("{")
		for _, n := range s {
			fmt.Fprintf(&b, "[%s] = true, ", luaString(n))
		}
		b.WriteString("}")
		return b.String()
	}
	var b strings.Builder
	b.WriteString("-- L1 (loadbench): graymesh's decision for one release, in Envoy.\n")
	b.WriteString(luaXXH64)
	fmt.Fprintf(&b, "local SALT = %s\n", luaString(salt))
	fmt.Fprintf(&b, "local BASIS_POINTS = %d\n", config.BasisPoints(r.Percent))
	fmt.Fprintf(&b, "local ENV = %s\n", luaString(r.Env))
	fmt.Fprintf(&b, "local RELEASE = %s\n", luaString(r.Name))
	fmt.Fprintf(&b, "local VERSION = %s\n", luaString(cfg.Version))
	fmt.Fprintf(&b, "local WHITELIST = %s\n", set(r.Whitelist))
	fmt.Fprintf(&b, "local BLACKLIST = %s\n", set(r.Blacklist))
	b.WriteString(luaDecide)
	if gray.Buckets != 10000 {
		return "", fmt.Errorf("the Lua filter assumes 10000 buckets, graymesh has %d", gray.Buckets)
	}
	return b.String(), nil
}

// luaString quotes s as a Lua string literal, escaping every byte that is
// not printable ASCII (Lua's \ddd is decimal).
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03d", c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
