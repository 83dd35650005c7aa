package x86enc

// gnuSlot is the room each case gets in the .text GNU as assembles
// (gnuref.Assemble): more than any case emits, the rest filled with int3.
const gnuSlot = 64
