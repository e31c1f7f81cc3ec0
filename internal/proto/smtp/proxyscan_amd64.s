#include "textflag.h"

// func replyStartBlocks(s []byte) (j, scanned int)
TEXT ·replyStartBlocks(SB), NOSPLIT, $0-40
	MOVQ s_base+0(FP), SI
	MOVQ s_len+8(FP), BX
	MOVQ $0x0a0a0a0a0a0a0a0a, AX
	MOVQ AX, X4
	PUNPCKLQDQ X4, X4 // '\n' in each byte
	MOVQ $0x3232323232323232, AX
	MOVQ AX, X5
	PUNPCKLQDQ X5, X5 // '2'
	MOVQ $0x0707070707070707, AX
	MOVQ AX, X6
	PUNPCKLQDQ X6, X6 // 7
	XORQ DI, DI

loop:
	// A block tests the pairs starting at DI..DI+15: it reads s[DI:DI+17].
	LEAQ 17(DI), DX
	CMPQ DX, BX
	JHI  none
	MOVOU (SI)(DI*1), X0
	MOVOU 1(SI)(DI*1), X1
	PCMPEQB X4, X0     // 0xff where s[i] == '\n'
	PSUBB   X5, X1     // s[i+1] - '2'
	MOVO    X1, X2
	PMINUB  X6, X2
	PCMPEQB X1, X2     // 0xff where s[i+1] - '2' <= 7 (unsigned)
	PAND    X0, X2
	PMOVMSKB X2, AX
	TESTL   AX, AX
	JNZ     found
	ADDQ    $16, DI
	JMP     loop

found:
	BSFL AX, AX
	LEAQ 1(DI)(AX*1), AX
	MOVQ AX, j+24(FP)
	MOVQ DI, scanned+32(FP)
	RET

none:
	MOVQ $-1, j+24(FP)
	MOVQ DI, scanned+32(FP)
	RET
