# METADATA
# title: lib.valid_id tests
# description: |
#   valid_id is permatrix.ValidID (validate.go's callers, permatrix.go): an id
#   of 1 to 256 bytes (contract.md section 2, lines 30-31: "a non-empty string of
#   at most 256 bytes") without control characters (C0 and DEL), so the Data
#   API refuses the ids POST /v1/check refuses. (Here, not beside lib.rego:
#   policies/permatrix holds no tests, it is the core authoring layouts copy.)
package valid_id_test

import data.permatrix.lib

# repeat is n copies of s, one string.
repeat(s, n) := concat("", [s | some _ in numbers.range(1, n)])

# char is the character of a code point.
char(code) := json.unmarshal(sprintf(`"\u%04x"`, [code]))

# contract.md:30-31: 256 bytes at most, counted in bytes, not characters.
test_valid_id_bounds_bytes if {
	lib.valid_id("a")
	lib.valid_id(repeat("a", 256))
	not lib.valid_id(repeat("a", 257))

	# é is 2 bytes: 128 of them are 256 bytes in 128 characters.
	lib.valid_id(concat("", [repeat("é", 127), "a"]))
	lib.valid_id(repeat("é", 128))
	not lib.valid_id(concat("", [repeat("é", 128), "a"]))

	# € is 3 bytes.
	lib.valid_id(repeat("€", 85))
	lib.valid_id(concat("", [repeat("€", 85), "a"]))
	not lib.valid_id(concat("", [repeat("€", 85), "ab"]))

	# 😀 is 4 bytes: 64 of them are 256 bytes in 64 characters.
	lib.valid_id(concat("", [repeat("😀", 63), "abc"]))
	lib.valid_id(repeat("😀", 64))
	not lib.valid_id(concat("", [repeat("😀", 64), "a"]))
}

# contract.md:30: "a non-empty string".
test_valid_id_non_empty_string if {
	not lib.valid_id("")
	not lib.valid_id(null)
	not lib.valid_id(7)
	not lib.valid_id(["a"])
}

# Every C0 control character (U+0000 to U+001F) and DEL (U+007F) is
# refused, anywhere in the id; the characters next to them are ids.
test_valid_id_refuses_control_characters if {
	controls := array.concat(numbers.range(0, 31), [127])
	count(controls) == 33
	every code in controls {
		not lib.valid_id(char(code))
		not lib.valid_id(concat("", ["a", char(code)]))
		not lib.valid_id(concat("", ["a", char(code), "b"]))
	}
	lib.valid_id(" ")
	lib.valid_id("~")
}

# Go refuses bytes below 0x20 and 0x7F; a C1 control (U+0080 to U+009F) is
# two bytes of 0xC2 and 0x80 to 0x9F, neither of them one of those, so it
# is an id there and here.
test_valid_id_takes_what_go_takes if {
	lib.valid_id(char(128))
	lib.valid_id(char(159))
	lib.valid_id("user:alice@example.com")
	lib.valid_id("ü")
}
