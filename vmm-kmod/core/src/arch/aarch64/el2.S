// EL2 code of the vmm module: vector table, the hyp stub's calls, our ping,
// and the probe run through the stub. Position independent: it is copied
// into a page of its own and runs there on physical addresses, EL2 MMU off.
//
// Host calls arrive as `hvc #0` with the function in x0 (Linux's stub ABI):
//   0 HVC_SET_VECTORS(x1 = vbar)     1 HVC_SOFT_RESTART(x1 = entry, x2..x4 = args)
//   2 HVC_RESET_VECTORS: back to the stub's vectors
//   VMM_HC_PING: x0 = magic, x1 = CurrentEL, x2 = VBAR_EL2, x3 = TPIDR_EL2
// Anything else answers HVC_STUB_ERR, as the stub does. Only x0-x9 are used.
//
// TPIDR_EL2 holds the physical address of this CPU's hyp page; the stub's
// VBAR_EL2 is kept at offset 0 of it, and the EL2 stack grows down from its end.

	.equ	HVC_SET_VECTORS, 0
	.equ	HVC_SOFT_RESTART, 1
	.equ	HVC_RESET_VECTORS, 2
	.equ	HVC_STUB_ERR, 0xbadca11
	.equ	VMM_HC_PING, 0x564d4d00
	.equ	VMM_EL2_MAGIC, 0x564d4d5f454c3221
	.equ	VMM_PROBE_MAGIC, 0x564d4d5f50524f42
	.equ	HYP_PAGE_STUB_VBAR, 0
	.equ	ESR_EC_SHIFT, 26
	.equ	ESR_EC_HVC64, 0x16

	.macro	mov_q reg, val
	movz	\reg, #(((\val) >> 48) & 0xffff), lsl #48
	movk	\reg, #(((\val) >> 32) & 0xffff), lsl #32
	movk	\reg, #(((\val) >> 16) & 0xffff), lsl #16
	movk	\reg, #((\val) & 0xffff)
	.endm

	.macro	park_vector
	b	el2_park
	.balign	0x80
	.endm

	.section .rodata.vmm_el2, "a"
	.balign	2048
	.global	vmm_el2_start
vmm_el2_start:
	// Current EL with SP_EL0, current EL with SP_ELx: a bug of ours.
	.rept	8
	park_vector
	.endr
	// Lower EL, AArch64: synchronous is the host's hvc; nothing else is routed here.
	b	el2_host_sync
	.balign	0x80
	.rept	3
	park_vector
	.endr
	// Lower EL, AArch32: never (the host is AArch64).
	.rept	4
	park_vector
	.endr

el2_park:
	wfe
	b	el2_park

el2_host_sync:
	mrs	x9, esr_el2
	lsr	x9, x9, #ESR_EC_SHIFT
	cmp	x9, #ESR_EC_HVC64
	b.ne	el2_park
	cmp	x0, #HVC_SET_VECTORS
	b.eq	el2_set_vectors
	cmp	x0, #HVC_SOFT_RESTART
	b.eq	el2_soft_restart
	cmp	x0, #HVC_RESET_VECTORS
	b.eq	el2_reset_vectors
	mov_q	x9, VMM_HC_PING
	cmp	x0, x9
	b.eq	el2_ping
	mov_q	x0, HVC_STUB_ERR
	eret

el2_set_vectors:
	msr	vbar_el2, x1
	isb
	mov	x0, xzr
	eret

el2_reset_vectors:
	mrs	x9, tpidr_el2
	ldr	x9, [x9, #HYP_PAGE_STUB_VBAR]
	msr	vbar_el2, x9
	isb
	mov	x0, xzr
	eret

	// kexec and friends: hand EL2 back to the stub, then do what it does.
el2_soft_restart:
	mrs	x9, tpidr_el2
	ldr	x9, [x9, #HYP_PAGE_STUB_VBAR]
	msr	vbar_el2, x9
	isb
	mov	x0, x2
	mov	x2, x4
	mov	x4, x1
	mov	x1, x3
	br	x4

el2_ping:
	mov_q	x0, VMM_EL2_MAGIC
	mrs	x1, CurrentEL
	mrs	x2, vbar_el2
	mrs	x3, tpidr_el2
	eret

	// Entered from the stub's HVC_SOFT_RESTART at EL2, MMU off, with
	// x0 = hyp page PA, x1 = EL2 stack top. ELR/SPSR_EL2 still hold the
	// host's return state, so eret goes back to the caller's hvc.
	.global	vmm_el2_probe
vmm_el2_probe:
	mrs	x2, vbar_el2
	str	x2, [x0, #HYP_PAGE_STUB_VBAR]
	msr	tpidr_el2, x0
	mov	sp, x1
	mov	x1, x2
	mov_q	x0, VMM_PROBE_MAGIC
	eret

	.global	vmm_el2_end
vmm_el2_end:
