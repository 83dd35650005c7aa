// Package cfgio writes and reads the control-flow graphs of package cfg: a
// versioned JSON dump that other tools and golden-file tests consume, a
// Graphviz rendering, a human-readable listing, and a structural diff of
// two graphs that ignores where the linker put things.
//
// # JSON schema, version 1
//
// A document is one JSON object. WriteJSON writes the members in this order
// and puts each function on a line of its own, so that a dump diffs well
// line by line and can be read one function at a time:
//
//	{"format":"redmagic-cfg","version":1,
//	 "binary":{"path":"/usr/bin/lua5.4","build_id":"9a1b..."},
//	 "functions":[
//	  {"name":"luaV_execute","start":N,"end":N,
//	   "parts":[{"start":N,"end":N}],
//	   "sources":["fde","dynsym"],
//	   "noreturn":true,
//	   "blocks":[{"start":N,"end":N,"insts":N,"last":N,
//	              "succs":[{"kind":"cond","target":N},{"kind":"return"}]}],
//	   "indirect_jumps":[{"addr":N,"kind":"computed-goto","table":N,
//	                      "entries":N,"bound_from":N,"targets":[N,...]}]}
//	 ]}
//
// Field by field:
//
//   - format: always "redmagic-cfg"; version: always 1. ReadJSON rejects
//     anything else, so a later incompatible schema bumps the version. Both
//     must come before functions, so that a reader knows the schema before
//     it decodes the bulk; other members may come in any order.
//   - binary.path, binary.build_id: the file the graph was recovered from
//     and its GNU build ID in hex; each omitted when empty.
//   - functions: ascending by start (stable for equal starts). name is
//     omitted for an unnamed function. [start, end) is the main part;
//     parts lists compiler-split out-of-line parts (.cold) in stored order;
//     sources says how the function was found, in stored order; noreturn is
//     present only when true.
//   - blocks: ascending by start, each [start, end) with insts
//     instructions, the last of them at last (omitted when 0). succs is in
//     stored order; kind is one of fallthrough, jump, cond, call, return,
//     tailcall, indirect, unresolved; target is omitted when 0 (return,
//     unresolved, an indirect call).
//   - indirect_jumps: ascending by addr. kind is none, pic-switch, absolute
//     or computed-goto; table, entries and bound_from are omitted when 0;
//     targets is ascending and omitted when empty.
//
// Empty arrays and false booleans are omitted everywhere. Addresses are
// JSON numbers holding uint64 values. JavaScript reads numbers as float64
// and so loses precision above 2^53; x86-64 user-space addresses are below
// 2^47, so every address in a dump is exact in any JSON reader.
//
// The output is a function of the graph alone: the same graph always
// encodes to the same bytes.
package cfgio
