package x86dec

// prefixes summarises the legacy and REX prefixes at the start of an
// instruction, as far as length and mandatory-prefix decisions need.
type prefixes struct {
	n       int  // number of prefix bytes (legacy and REX)
	has66   bool // operand-size override present
	has67   bool // address-size override present
	repLast byte // last F2/F3 seen, 0 if none
	lock    bool
	seg     byte // last segment override (26 2E 36 3E 64 65), 0 if none
	rex     byte // REX byte when it is the last prefix (otherwise ignored by the CPU), else 0
	onlySeg bool // every prefix is a segment override or 67 (the prefixes allowed before VEX)
}

// scanPrefixes reads prefixes from code. It stops at the first byte that
// is not a prefix or at MaxLen bytes.
func scanPrefixes(code []byte) prefixes {
	p := prefixes{onlySeg: true}
	for p.n < len(code) && p.n < MaxLen {
		b := code[p.n]
		switch {
		case b == 0x66:
			p.has66 = true
			p.onlySeg = false
		case b == 0x67:
			p.has67 = true
		case b == 0xF2 || b == 0xF3:
			p.repLast = b
			p.onlySeg = false
		case b == 0xF0:
			p.lock = true
			p.onlySeg = false
		case b == 0x26 || b == 0x2E || b == 0x36 || b == 0x3E || b == 0x64 || b == 0x65:
			p.seg = b
		case b&0xF0 == 0x40:
			p.rex = b
			p.onlySeg = false
			p.n++
			continue
		default:
			return p
		}
		// A legacy prefix after REX makes the CPU ignore the REX.
		p.rex = 0
		p.n++
	}
	return p
}

// mandatory returns the prefix that selects among the forms of an opcode
// in the 0F maps: F2/F3 (the last one) win over 66.
func (p prefixes) mandatory() prefixSet {
	switch {
	case p.repLast == 0xF3:
		return pF3
	case p.repLast == 0xF2:
		return pF2
	case p.has66:
		return p66
	}
	return pNP
}

func (p prefixes) rexW() bool { return p.rex&0x08 != 0 }
func (p prefixes) rexR() bool { return p.rex&0x04 != 0 }
func (p prefixes) rexX() bool { return p.rex&0x02 != 0 }
func (p prefixes) rexB() bool { return p.rex&0x01 != 0 }
