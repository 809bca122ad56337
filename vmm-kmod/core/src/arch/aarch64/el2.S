// EL2 code of the vmm module: vector table, the hyp stub's calls, our own
// calls (ping, MMU on, run a guest, TLB invalidation by VMID), the world
// switch, and the probe run through the stub. Position independent: it is
// copied into a page of its own and runs on physical addresses, first with
// the EL2 MMU off (as the stub does), then on the module's identity map.
//
// Host calls arrive as `hvc #0` with the function in x0 (Linux's stub ABI):
//   0 HVC_SET_VECTORS(x1 = vbar)     1 HVC_SOFT_RESTART(x1 = entry, x2..x4 = args)
//   2 HVC_RESET_VECTORS: back to the stub's vectors, MMU off
//   VMM_HC_PING: x0 = magic, x1 = CurrentEL, x2 = VBAR_EL2, x3 = TPIDR_EL2
//   VMM_HC_MMU_ON(x1 = TTBR0_EL2, x2 = TCR_EL2, x3 = MAIR_EL2)
//   VMM_HC_RUN(x1 = guest context PA): runs the guest until an exit; x0 = 0
//   VMM_HC_TLBI_VMID(x1 = VTTBR): invalidates that VMID's TLB entries, all CPUs
//   VMM_HC_GIC_VTR: x0 = ICH_VTR_EL2, or 0 without the GICv3 system registers
// Anything else answers HVC_STUB_ERR, as the stub does. The host treats
// x0-x17 as clobbered; x18-x30 and the host's EL1 state survive a run.
//
// TPIDR_EL2 holds the physical address of this CPU's hyp page: the stub's
// VBAR_EL2 at HYP_STUB_VBAR, the running guest's context at HYP_GUEST, the
// host's context at HYP_HOST; the EL2 stack grows down from its end.
// Context offsets come from the Rust layout (vcpu/context.rs).
//
// With a VHE host (the kernel itself at EL2, HCR_EL2.E2H set) none of the
// above applies: the kernel calls vmm_vhe_run (below, in .text) directly,
// which installs vmm_vhe_vectors around the guest's run. The world switch
// itself (guest_enter, guest_exit) is one script for both hosts; what
// differs is named by the `mode` argument of its macros: `nvhe`, `vhe`, or
// `vhehost` (the host's own state under VHE: only the EL1 registers that
// E2H does not redirect to EL2's are the host's and need switching).

	// The kernel's Rust is built without FP/SIMD; only EL2 switches the
	// guest's FP/SIMD registers, so only this code may name them.
	.arch_extension fp
	.arch_extension simd

	.equ	HVC_SET_VECTORS, 0
	.equ	HVC_SOFT_RESTART, 1
	.equ	HVC_RESET_VECTORS, 2
	.equ	HVC_STUB_ERR, 0xbadca11
	.equ	VMM_HC_PING, 0x564d4d00
	.equ	VMM_HC_MMU_ON, 0x564d4d01
	.equ	VMM_HC_RUN, 0x564d4d02
	.equ	VMM_HC_TLBI_VMID, 0x564d4d03
	.equ	VMM_HC_GIC_VTR, 0x564d4d04
	.equ	VMM_EL2_MAGIC, 0x564d4d5f454c3221
	.equ	VMM_PROBE_MAGIC, 0x564d4d5f50524f42
	.equ	ESR_EC_SHIFT, 26
	.equ	ESR_EC_HVC64, 0x16
	.equ	SCTLR_M_C_I, 0x1005

	.equ	HYP_STUB_VBAR, {hyp_stub_vbar}
	.equ	HYP_GUEST, {hyp_guest}
	.equ	HYP_HOST, {hyp_host}
	.equ	HYP_VHE_SP, {hyp_vhe_sp}
	.equ	HYP_VHE_TPIDR, {hyp_vhe_tpidr}
	.equ	HYP_VHE_VBAR, {hyp_vhe_vbar}
	.equ	HYP_VHE_DAIF, {hyp_vhe_daif}
	.equ	CTX_PC, {ctx_pc}
	.equ	CTX_SYS, {ctx_sys}
	.equ	CTX_TIMER, {ctx_timer}
	.equ	CTX_EL2, {ctx_el2}
	.equ	CTX_EXIT, {ctx_exit}
	.equ	CTX_FP, {ctx_fp}
	.equ	CTX_VGIC, {ctx_vgic}
	.equ	CTX_DEBUG, {ctx_debug}
	.equ	DBG_BVR, {dbg_bvr}
	.equ	DBG_BCR, {dbg_bcr}
	.equ	DBG_WVR, {dbg_wvr}
	.equ	DBG_WCR, {dbg_wcr}
	.equ	VGIC_LRS, {vgic_lrs}
	.equ	FP_FPCR, {fp_fpcr}
	.equ	EL2_HCR, {el2_hcr}
	.equ	EL2_VTTBR, {el2_vttbr}
	.equ	EL2_VTCR, {el2_vtcr}
	.equ	EL2_VMPIDR, {el2_vmpidr}
	.equ	EL2_VPIDR, {el2_vpidr}
	.equ	EL2_CNTVOFF, {el2_cntvoff}
	.equ	EL2_CPTR, {el2_cptr}
	.equ	EL2_MDCR, {el2_mdcr}
	.equ	EL2_CNTHCTL, {el2_cnthctl}
	.equ	EL2_FLAGS, {el2_flags}
	.equ	EL2_HCRX, {el2_hcrx}
	.equ	EXIT_KIND, {exit_kind}
	.equ	EXIT_ESR, {exit_esr}
	.equ	EXIT_HPFAR, {exit_hpfar}
	.equ	CTX_EXIT_EL2_HVCS, {ctx_exit_el2_hvcs}
	.equ	EXIT_SYNC, {exit_sync}
	.equ	EXIT_IRQ, {exit_irq}
	.equ	EXIT_FIQ, {exit_fiq}
	.equ	EXIT_SERROR, {exit_serror}

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

	// A guest exit: keep guest x0/x1 on the EL2 stack, x0 = the kind.
	// From the host (stage 2 off), a synchronous exception is a host call.
	.macro	lower_vector kind
	stp	x0, x1, [sp, #-16]!
	mrs	x0, hcr_el2
	tbz	x0, #0, el2_from_host_\kind
	mov	x0, #\kind
	b	el2_guest_exit
	.balign	0x80
	.endm

	// Two EL1/EL0 registers of context \ctx (Sys slots \slot and \slot + 1),
	// saved from or loaded into the CPU (\op: save or load), through x5 and
	// x6. EL2 reaches each as \nv, or with E2H set (mode vhe) as \vh, its
	// *_EL12 encoding, where E2H redirects \nv to an EL2 register; \vh is
	// `-` for the registers E2H leaves alone, which are all the host has
	// under VHE (mode vhehost).
	.macro	el1_pair op, mode, ctx, slot, nv1, vh1, nv2, vh2
	.ifc	\mode, vhehost
	.ifc	\vh1, -
	.ifc	\vh2, -
	el1_access2 \op, \ctx, \slot, \nv1, \nv2
	.else
	el1_access1 \op, \ctx, \slot, \nv1
	.endif
	.else
	.ifc	\vh2, -
	el1_access1 \op, \ctx, (\slot + 1), \nv2
	.endif
	.endif
	.else
	.ifc	\mode, vhe
	.ifc	\vh1, -
	.ifc	\vh2, -
	el1_access2 \op, \ctx, \slot, \nv1, \nv2
	.else
	el1_access2 \op, \ctx, \slot, \nv1, \vh2
	.endif
	.else
	.ifc	\vh2, -
	el1_access2 \op, \ctx, \slot, \vh1, \nv2
	.else
	el1_access2 \op, \ctx, \slot, \vh1, \vh2
	.endif
	.endif
	.else
	el1_access2 \op, \ctx, \slot, \nv1, \nv2
	.endif
	.endif
	.endm

	.macro	el1_access2 op, ctx, slot, name1, name2
	.ifc	\op, save
	mrs	x5, \name1
	mrs	x6, \name2
	stp	x5, x6, [\ctx, #(CTX_SYS + 8 * \slot)]
	.else
	ldp	x5, x6, [\ctx, #(CTX_SYS + 8 * \slot)]
	msr	\name1, x5
	msr	\name2, x6
	.endif
	.endm

	.macro	el1_access1 op, ctx, slot, name
	.ifc	\op, save
	mrs	x5, \name
	str	x5, [\ctx, #(CTX_SYS + 8 * \slot)]
	.else
	ldr	x5, [\ctx, #(CTX_SYS + 8 * \slot)]
	msr	\name, x5
	.endif
	.endm

	// EL1/EL0 system registers, in the order of vcpu::context::Sys. Uses x5
	// and x6; `ctx` must be another register.
	.macro	el1_regs op, mode, ctx
	el1_pair \op, \mode, \ctx, 0, sctlr_el1, s3_5_c1_c0_0, cpacr_el1, s3_5_c1_c0_2
	el1_pair \op, \mode, \ctx, 2, ttbr0_el1, s3_5_c2_c0_0, ttbr1_el1, s3_5_c2_c0_1
	el1_pair \op, \mode, \ctx, 4, tcr_el1, s3_5_c2_c0_2, mair_el1, s3_5_c10_c2_0
	el1_pair \op, \mode, \ctx, 6, amair_el1, s3_5_c10_c3_0, vbar_el1, s3_5_c12_c0_0
	el1_pair \op, \mode, \ctx, 8, contextidr_el1, s3_5_c13_c0_1, tpidr_el1, -
	el1_pair \op, \mode, \ctx, 10, tpidr_el0, -, tpidrro_el0, -
	el1_pair \op, \mode, \ctx, 12, sp_el0, -, sp_el1, -
	el1_pair \op, \mode, \ctx, 14, elr_el1, s3_5_c4_c0_1, spsr_el1, s3_5_c4_c0_0
	el1_pair \op, \mode, \ctx, 16, esr_el1, s3_5_c5_c2_0, far_el1, s3_5_c6_c0_0
	el1_pair \op, \mode, \ctx, 18, afsr0_el1, s3_5_c5_c1_0, afsr1_el1, s3_5_c5_c1_1
	el1_pair \op, \mode, \ctx, 20, par_el1, -, cntkctl_el1, s3_5_c14_c1_0
	el1_pair \op, \mode, \ctx, 22, csselr_el1, -, mdscr_el1, -
	.endm

	// The guest's virtual timer (CNTV_CTL, CNTV_CVAL at CTX_TIMER), through x3
	// and x4; with E2H set EL2 reaches the EL1 timer as CNTV_*_EL02. A save
	// also stops it, so that it does not fire into the host.
	.macro	guest_timer op, mode, ctx
	.ifc	\op, save
	.ifc	\mode, vhe
	mrs	x3, s3_5_c14_c3_1
	mrs	x4, s3_5_c14_c3_2
	msr	s3_5_c14_c3_1, xzr
	.else
	mrs	x3, cntv_ctl_el0
	mrs	x4, cntv_cval_el0
	msr	cntv_ctl_el0, xzr
	.endif
	stp	x3, x4, [\ctx, #CTX_TIMER]
	.else
	ldp	x3, x4, [\ctx, #CTX_TIMER]
	.ifc	\mode, vhe
	msr	s3_5_c14_c3_2, x4
	msr	s3_5_c14_c3_1, x3
	.else
	msr	cntv_cval_el0, x4
	msr	cntv_ctl_el0, x3
	.endif
	.endif
	.endm

	.macro	save_fp ctx
	add	x9, \ctx, #CTX_FP
	stp	q0, q1, [x9, #0]
	stp	q2, q3, [x9, #32]
	stp	q4, q5, [x9, #64]
	stp	q6, q7, [x9, #96]
	stp	q8, q9, [x9, #128]
	stp	q10, q11, [x9, #160]
	stp	q12, q13, [x9, #192]
	stp	q14, q15, [x9, #224]
	stp	q16, q17, [x9, #256]
	stp	q18, q19, [x9, #288]
	stp	q20, q21, [x9, #320]
	stp	q22, q23, [x9, #352]
	stp	q24, q25, [x9, #384]
	stp	q26, q27, [x9, #416]
	stp	q28, q29, [x9, #448]
	stp	q30, q31, [x9, #480]
	mrs	x5, fpcr
	mrs	x6, fpsr
	add	x9, x9, #FP_FPCR
	stp	x5, x6, [x9]
	.endm

	.macro	restore_fp ctx
	add	x9, \ctx, #CTX_FP
	ldp	q0, q1, [x9, #0]
	ldp	q2, q3, [x9, #32]
	ldp	q4, q5, [x9, #64]
	ldp	q6, q7, [x9, #96]
	ldp	q8, q9, [x9, #128]
	ldp	q10, q11, [x9, #160]
	ldp	q12, q13, [x9, #192]
	ldp	q14, q15, [x9, #224]
	ldp	q16, q17, [x9, #256]
	ldp	q18, q19, [x9, #288]
	ldp	q20, q21, [x9, #320]
	ldp	q22, q23, [x9, #352]
	ldp	q24, q25, [x9, #384]
	ldp	q26, q27, [x9, #416]
	ldp	q28, q29, [x9, #448]
	ldp	q30, q31, [x9, #480]
	add	x9, x9, #FP_FPCR
	ldp	x5, x6, [x9]
	msr	fpcr, x5
	msr	fpsr, x6
	.endm

	// The guest's virtual CPU interface, if its VM has a vGIC (nr_lrs != 0):
	// VMCR, AP0R0, AP1R0, then as many list registers as the CPU has,
	// through a jump into a table of (load, msr) pairs, last to first.
	// Uses x3-x6 and x9.
	.macro	restore_vgic ctx
	add	x9, \ctx, #CTX_VGIC
	ldr	x4, [x9]
	cbz	x4, 5f
	ldp	x5, x6, [x9, #16]
	msr	ich_vmcr_el2, x5
	msr	ich_ap0r0_el2, x6
	ldr	x5, [x9, #32]
	msr	ich_ap1r0_el2, x5
	add	x3, x9, #VGIC_LRS
	adr	x5, 6f
	sub	x5, x5, x4, lsl #3
	br	x5
	ldr	x6, [x3, #120]
	msr	ich_lr15_el2, x6
	ldr	x6, [x3, #112]
	msr	ich_lr14_el2, x6
	ldr	x6, [x3, #104]
	msr	ich_lr13_el2, x6
	ldr	x6, [x3, #96]
	msr	ich_lr12_el2, x6
	ldr	x6, [x3, #88]
	msr	ich_lr11_el2, x6
	ldr	x6, [x3, #80]
	msr	ich_lr10_el2, x6
	ldr	x6, [x3, #72]
	msr	ich_lr9_el2, x6
	ldr	x6, [x3, #64]
	msr	ich_lr8_el2, x6
	ldr	x6, [x3, #56]
	msr	ich_lr7_el2, x6
	ldr	x6, [x3, #48]
	msr	ich_lr6_el2, x6
	ldr	x6, [x3, #40]
	msr	ich_lr5_el2, x6
	ldr	x6, [x3, #32]
	msr	ich_lr4_el2, x6
	ldr	x6, [x3, #24]
	msr	ich_lr3_el2, x6
	ldr	x6, [x3, #16]
	msr	ich_lr2_el2, x6
	ldr	x6, [x3, #8]
	msr	ich_lr1_el2, x6
	ldr	x6, [x3, #0]
	msr	ich_lr0_el2, x6
6:	ldr	x5, [x9, #8]
	msr	ich_hcr_el2, x5
5:
	.endm

	// Saves what restore_vgic loaded and turns the virtual interface off.
	.macro	save_vgic ctx
	add	x9, \ctx, #CTX_VGIC
	ldr	x4, [x9]
	cbz	x4, 7f
	mrs	x5, ich_vmcr_el2
	mrs	x6, ich_ap0r0_el2
	stp	x5, x6, [x9, #16]
	mrs	x5, ich_ap1r0_el2
	str	x5, [x9, #32]
	add	x3, x9, #VGIC_LRS
	adr	x5, 8f
	sub	x5, x5, x4, lsl #3
	br	x5
	mrs	x6, ich_lr15_el2
	str	x6, [x3, #120]
	mrs	x6, ich_lr14_el2
	str	x6, [x3, #112]
	mrs	x6, ich_lr13_el2
	str	x6, [x3, #104]
	mrs	x6, ich_lr12_el2
	str	x6, [x3, #96]
	mrs	x6, ich_lr11_el2
	str	x6, [x3, #88]
	mrs	x6, ich_lr10_el2
	str	x6, [x3, #80]
	mrs	x6, ich_lr9_el2
	str	x6, [x3, #72]
	mrs	x6, ich_lr8_el2
	str	x6, [x3, #64]
	mrs	x6, ich_lr7_el2
	str	x6, [x3, #56]
	mrs	x6, ich_lr6_el2
	str	x6, [x3, #48]
	mrs	x6, ich_lr5_el2
	str	x6, [x3, #40]
	mrs	x6, ich_lr4_el2
	str	x6, [x3, #32]
	mrs	x6, ich_lr3_el2
	str	x6, [x3, #24]
	mrs	x6, ich_lr2_el2
	str	x6, [x3, #16]
	mrs	x6, ich_lr1_el2
	str	x6, [x3, #8]
	mrs	x6, ich_lr0_el2
	str	x6, [x3, #0]
8:	msr	ich_hcr_el2, xzr
7:
	.endm

	// One bank of breakpoint or watchpoint registers (\name is dbgbvr,
	// dbgbcr, dbgwvr or dbgwcr): `save` stores the first \count of them at
	// [\base + 8n], `load` loads them, through a jump into a table of
	// (access, move) pairs, last to first. Uses x5 and x6.
	.macro	dbg_bank dir, name, count, base
	adr	x5, 9f
	sub	x5, x5, \count, lsl #3
	br	x5
	.irp	n, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0
	dbg_one	\dir, \name, \n, \base
	.endr
9:
	.endm

	.macro	dbg_one dir, name, n, base
	.ifc	\dir, save
	mrs	x6, \name\n\()_el1
	str	x6, [\base, #(\n * 8)]
	.else
	ldr	x6, [\base, #(\n * 8)]
	msr	\name\n\()_el1, x6
	.endif
	.endm

	// Saves or loads the breakpoints and watchpoints of context \ctx, as
	// many as guest context \guest says the CPU has. Uses x3-x7 and x9.
	.macro	dbg_regs dir, ctx, guest
	add	x9, \guest, #CTX_DEBUG
	ldp	x4, x7, [x9]
	add	x3, \ctx, #(CTX_DEBUG + DBG_BVR)
	dbg_bank \dir, dbgbvr, x4, x3
	add	x3, \ctx, #(CTX_DEBUG + DBG_BCR)
	dbg_bank \dir, dbgbcr, x4, x3
	add	x3, \ctx, #(CTX_DEBUG + DBG_WVR)
	dbg_bank \dir, dbgwvr, x7, x3
	add	x3, \ctx, #(CTX_DEBUG + DBG_WCR)
	dbg_bank \dir, dbgwcr, x7, x3
	.endm

	.section .rodata.vmm_el2, "a"
	.balign	2048
	.global	vmm_el2_start
vmm_el2_start:
	// Current EL with SP_EL0, current EL with SP_ELx: a bug of ours.
	.rept	8
	park_vector
	.endr
	// Lower EL, AArch64.
	lower_vector EXIT_SYNC
	lower_vector EXIT_IRQ
	lower_vector EXIT_FIQ
	lower_vector EXIT_SERROR
	// Lower EL, AArch32: never (guests and host are AArch64).
	.rept	4
	park_vector
	.endr

el2_park:
	wfe
	b	el2_park

	// Only a host hvc reaches EL2 from the host; other kinds are a bug.
el2_from_host_EXIT_IRQ:
el2_from_host_EXIT_FIQ:
el2_from_host_EXIT_SERROR:
	b	el2_park

el2_from_host_EXIT_SYNC:
	ldp	x0, x1, [sp], #16
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
	mov_q	x9, VMM_HC_RUN
	cmp	x0, x9
	b.eq	el2_run
	mov_q	x9, VMM_HC_PING
	cmp	x0, x9
	b.eq	el2_ping
	mov_q	x9, VMM_HC_MMU_ON
	cmp	x0, x9
	b.eq	el2_mmu_on
	mov_q	x9, VMM_HC_TLBI_VMID
	cmp	x0, x9
	b.eq	el2_tlbi_vmid
	mov_q	x9, VMM_HC_GIC_VTR
	cmp	x0, x9
	b.eq	el2_gic_vtr
	mov_q	x0, HVC_STUB_ERR
	eret

el2_set_vectors:
	msr	vbar_el2, x1
	isb
	mov	x0, xzr
	eret

	// EL2 MMU and caches off, as the stub expects them.
el2_mmu_off:
	mrs	x9, sctlr_el2
	mov	x10, #SCTLR_M_C_I
	bic	x9, x9, x10
	msr	sctlr_el2, x9
	isb
	tlbi	alle2
	dsb	ish
	isb
	ret

el2_reset_vectors:
	mrs	x9, tpidr_el2
	ldr	x11, [x9, #HYP_STUB_VBAR]
	bl	el2_mmu_off
	msr	vbar_el2, x11
	isb
	mov	x0, xzr
	eret

	// kexec and friends: hand EL2 back to the stub, then do what it does.
el2_soft_restart:
	mrs	x9, tpidr_el2
	ldr	x11, [x9, #HYP_STUB_VBAR]
	mov	x12, x30
	bl	el2_mmu_off
	mov	x30, x12
	msr	vbar_el2, x11
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

	// The identity map is built and cleaned to PoC by the kernel.
el2_mmu_on:
	msr	mair_el2, x3
	msr	tcr_el2, x2
	msr	ttbr0_el2, x1
	isb
	tlbi	alle2
	dsb	ish
	isb
	mrs	x9, sctlr_el2
	mov	x10, #SCTLR_M_C_I
	orr	x9, x9, x10
	msr	sctlr_el2, x9
	isb
	ic	iallu
	dsb	nsh
	isb
	mov	x0, xzr
	eret

el2_gic_vtr:
	mrs	x0, icc_sre_el2
	tbz	x0, #0, 1f
	mrs	x0, ich_vtr_el2
	eret
1:	mov	x0, xzr
	eret

	// The kernel's stage-2 descriptor writes (an unmap) reach the table
	// walkers of every CPU before their TLB entries are dropped.
el2_tlbi_vmid:
	dsb	ishst
	mrs	x2, vttbr_el2
	msr	vttbr_el2, x1
	isb
	tlbi	vmalls12e1is
	dsb	ish
	msr	vttbr_el2, x2
	isb
	mov	x0, xzr
	eret

	// ---- the world switch, for both hosts ---------------------------------

	// Host -> guest. On entry x1 = the guest context, x2 = the host context
	// (the host's EL2 registers are saved there; its EL1 state and callee-
	// saved registers already are), EL2's vectors in place and TPIDR_EL2 =
	// this CPU's hyp page. Ends by entering the guest.
	.macro	guest_enter mode
	// Host EL2 state the exit path restores.
	add	x9, x2, #CTX_EL2
	mrs	x3, hcr_el2
	str	x3, [x9, #EL2_HCR]
	mrs	x3, vmpidr_el2
	str	x3, [x9, #EL2_VMPIDR]
	mrs	x3, vpidr_el2
	str	x3, [x9, #EL2_VPIDR]
	mrs	x3, cntvoff_el2
	str	x3, [x9, #EL2_CNTVOFF]
	mrs	x3, cptr_el2
	str	x3, [x9, #EL2_CPTR]
	mrs	x3, mdcr_el2
	str	x3, [x9, #EL2_MDCR]
	mrs	x3, cnthctl_el2
	str	x3, [x9, #EL2_CNTHCTL]
	// Guest EL2 configuration (HCR_EL2 and CPTR_EL2 as the context has them:
	// the vCPU was made for this host's mode, see vcpu::guest_hcr).
	add	x10, x1, #CTX_EL2
	ldr	x3, [x10, #EL2_VTCR]
	msr	vtcr_el2, x3
	ldr	x3, [x10, #EL2_VTTBR]
	msr	vttbr_el2, x3
	ldr	x3, [x10, #EL2_VMPIDR]
	msr	vmpidr_el2, x3
	ldr	x3, [x10, #EL2_VPIDR]
	msr	vpidr_el2, x3
	ldr	x3, [x10, #EL2_CNTVOFF]
	msr	cntvoff_el2, x3
	ldr	x3, [x10, #EL2_CPTR]
	msr	cptr_el2, x3
	// MDCR: the host's HPMN (counters it keeps) plus the guest's traps.
	mrs	x3, mdcr_el2
	and	x3, x3, #0x1f
	ldr	x4, [x10, #EL2_MDCR]
	orr	x3, x3, x4
	msr	mdcr_el2, x3
	// The guest may read the physical counter but not use the physical
	// timer, which is the host's: EL1PCTEN set, EL1PCEN clear (bits 10 and
	// 11 with E2H set, 0 and 1 without).
	mrs	x3, cnthctl_el2
	.ifc	\mode, vhe
	bic	x3, x3, #(1 << 11)
	orr	x3, x3, #(1 << 10)
	.else
	bic	x3, x3, #2
	orr	x3, x3, #1
	.endif
	msr	cnthctl_el2, x3
	isb
	// The entry's flags stay in x11 (no macro below uses it).
	ldr	x11, [x10, #EL2_FLAGS]
	// The guest's debug exceptions are on: its breakpoints and watchpoints
	// replace the host's until the exit.
	tbz	x11, #1, 2f
	dbg_regs save, x2, x1
	dbg_regs load, x1, x1
2:	// FEAT_HCX: the guest's HCRX_EL2 (0: what it controls traps or is off).
	tbz	x11, #2, 3f
	mrs	x4, S3_4_C1_C2_2
	str	x4, [x2, #(CTX_EL2 + EL2_HCRX)]
	ldr	x4, [x10, #EL2_HCRX]
	msr	S3_4_C1_C2_2, x4
3:	tbz	x11, #3, 4f
	restore_fp x1
4:	el1_regs load, \mode, x1
	guest_timer load, \mode, x1
	restore_vgic x1
	// Stage 2 and the traps on, last.
	ldr	x3, [x10, #EL2_HCR]
	msr	hcr_el2, x3
	isb
	// The vCPU last ran on another CPU: drop this CPU's stale entries of its
	// VMID (after HCR_EL2: with E2H and TGE set, TLB maintenance would not
	// reach the guest's regime).
	tbz	x11, #0, 1f
	tlbi	vmalls12e1
	dsb	nsh
1:	ldp	x3, x4, [x1, #CTX_PC]
	msr	elr_el2, x3
	msr	spsr_el2, x4
	isb
	ldp	x2, x3, [x1, #16]
	ldp	x4, x5, [x1, #32]
	ldp	x6, x7, [x1, #48]
	ldp	x8, x9, [x1, #64]
	ldp	x10, x11, [x1, #80]
	ldp	x12, x13, [x1, #96]
	ldp	x14, x15, [x1, #112]
	ldp	x16, x17, [x1, #128]
	ldp	x18, x19, [x1, #144]
	ldp	x20, x21, [x1, #160]
	ldp	x22, x23, [x1, #176]
	ldp	x24, x25, [x1, #192]
	ldp	x26, x27, [x1, #208]
	ldp	x28, x29, [x1, #224]
	ldr	x30, [x1, #240]
	ldp	x0, x1, [x1, #0]
	eret
	dsb	nsh
	isb
	.endm

	// Guest -> host, up to the host's EL1 state. On entry x0 = the exit
	// kind, the guest's x0 and x1 on the stack, TPIDR_EL2 = the hyp page.
	// Leaves x0 = the hyp page, x1 = the guest context, x2 = the host
	// context, with the host's EL2 registers back.
	.macro	guest_exit mode
	mrs	x1, tpidr_el2
	ldr	x1, [x1, #HYP_GUEST]
	stp	x2, x3, [x1, #16]
	stp	x4, x5, [x1, #32]
	stp	x6, x7, [x1, #48]
	stp	x8, x9, [x1, #64]
	stp	x10, x11, [x1, #80]
	stp	x12, x13, [x1, #96]
	stp	x14, x15, [x1, #112]
	stp	x16, x17, [x1, #128]
	stp	x18, x19, [x1, #144]
	stp	x20, x21, [x1, #160]
	stp	x22, x23, [x1, #176]
	stp	x24, x25, [x1, #192]
	stp	x26, x27, [x1, #208]
	stp	x28, x29, [x1, #224]
	str	x30, [x1, #240]
	ldp	x2, x3, [sp], #16
	stp	x2, x3, [x1, #0]
	add	x10, x1, #CTX_EXIT
	str	x0, [x10, #EXIT_KIND]
	mrs	x2, esr_el2
	mrs	x3, far_el2
	stp	x2, x3, [x10, #EXIT_ESR]
	mrs	x2, hpfar_el2
	str	x2, [x10, #EXIT_HPFAR]
	mrs	x2, elr_el2
	mrs	x3, spsr_el2
	stp	x2, x3, [x1, #CTX_PC]
	el1_regs save, \mode, x1
	guest_timer save, \mode, x1
	ldr	x11, [x1, #(CTX_EL2 + EL2_FLAGS)]
	tbz	x11, #3, 5f
	save_fp x1
5:	save_vgic x1
	// Back to the host: stage 2 and traps off first.
	mrs	x0, tpidr_el2
	add	x2, x0, #HYP_HOST
	add	x9, x2, #CTX_EL2
	ldr	x3, [x9, #EL2_HCR]
	msr	hcr_el2, x3
	msr	vttbr_el2, xzr
	ldr	x3, [x9, #EL2_VMPIDR]
	msr	vmpidr_el2, x3
	ldr	x3, [x9, #EL2_VPIDR]
	msr	vpidr_el2, x3
	ldr	x3, [x9, #EL2_CNTVOFF]
	msr	cntvoff_el2, x3
	ldr	x3, [x9, #EL2_CPTR]
	msr	cptr_el2, x3
	ldr	x3, [x9, #EL2_MDCR]
	msr	mdcr_el2, x3
	ldr	x3, [x9, #EL2_CNTHCTL]
	msr	cnthctl_el2, x3
	isb
	// The host's HCRX_EL2 (S3_4_C1_C2_2) back; then its breakpoints and
	// watchpoints, if the guest's were in. The entry's flags in x11.
	ldr	x11, [x1, #(CTX_EL2 + EL2_FLAGS)]
	tbz	x11, #2, 2f
	ldr	x4, [x9, #EL2_HCRX]
	msr	S3_4_C1_C2_2, x4
	isb
2:	tbz	x11, #1, 1f
	dbg_regs load, x2, x1
1:
	.endm

	// The EL2 tier: exits answered here, without switching to the host and
	// back. Chosen by how often they come and that they need nothing of the
	// host kernel: the SMCCC discovery calls (SMCCC_VERSION, and
	// SMCCC_ARCH_FEATURES of those two; the kernel answers the same). On
	// entry x0 = the exit kind, the guest's x0/x1 on the stack, every other
	// register the guest's; either returns to the guest or goes on below
	// with x0 = the kind again.
	.macro	el2_tier
	cbnz	x0, 10f				// not EXIT_SYNC (0): as it is
	mrs	x0, esr_el2
	lsr	x1, x0, #ESR_EC_SHIFT
	cmp	x1, #ESR_EC_HVC64
	b.ne	9f
	tst	x0, #0xffff			// hvc #0: SMCCC
	b.ne	9f
	ldr	w0, [sp]			// the function id (w0)
	mov	w1, #0x80000000			// SMCCC_VERSION
	cmp	w0, w1
	b.eq	7f
	add	w1, w1, #1			// SMCCC_ARCH_FEATURES
	cmp	w0, w1
	b.ne	9f
	ldr	w0, [sp, #8]			// of which function (w1)
	sub	w0, w0, w1			// 0: ARCH_FEATURES, -1: VERSION
	cmn	w0, #1
	ccmp	w0, #0, #4, ne
	mov	x0, xzr				// implemented...
	b.eq	8f
	mov	x0, #-1				// ...or NOT_SUPPORTED
	b	8f
7:	mov	x0, #1			// SMCCC 1.1: 0x10001
	movk	x0, #1, lsl #16
8:	str	x0, [sp]
	mrs	x1, tpidr_el2
	ldr	x1, [x1, #HYP_GUEST]
	ldr	x0, [x1, #CTX_EXIT_EL2_HVCS]
	add	x0, x0, #1
	str	x0, [x1, #CTX_EXIT_EL2_HVCS]
	ldp	x0, x1, [sp], #16
	eret
	dsb	nsh
	isb
9:	mov	x0, #EXIT_SYNC
10:
	.endm

	// ---- nVHE: the host calls VMM_HC_RUN with x1 = the guest context's PA --
el2_run:
	mrs	x0, tpidr_el2
	str	x1, [x0, #HYP_GUEST]
	add	x2, x0, #HYP_HOST
	stp	x18, x19, [x2, #144]
	stp	x20, x21, [x2, #160]
	stp	x22, x23, [x2, #176]
	stp	x24, x25, [x2, #192]
	stp	x26, x27, [x2, #208]
	stp	x28, x29, [x2, #224]
	str	x30, [x2, #240]
	el1_regs save, nvhe, x2
	mrs	x3, elr_el2
	mrs	x4, spsr_el2
	stp	x3, x4, [x2, #CTX_PC]
	guest_enter nvhe

el2_guest_exit:
	el2_tier
	guest_exit nvhe
	el1_regs load, nvhe, x2
	ldp	x3, x4, [x2, #CTX_PC]
	msr	elr_el2, x3
	msr	spsr_el2, x4
	ldp	x18, x19, [x2, #144]
	ldp	x20, x21, [x2, #160]
	ldp	x22, x23, [x2, #176]
	ldp	x24, x25, [x2, #192]
	ldp	x26, x27, [x2, #208]
	ldp	x28, x29, [x2, #224]
	ldr	x30, [x2, #240]
	mov	x0, xzr
	isb
	eret
	dsb	nsh
	isb

	// Entered from the stub's HVC_SOFT_RESTART at EL2, MMU off, with
	// x0 = hyp page PA, x1 = EL2 stack top. ELR/SPSR_EL2 still hold the
	// host's return state, so eret goes back to the caller's hvc.
	.global	vmm_el2_probe
vmm_el2_probe:
	mrs	x2, vbar_el2
	str	x2, [x0, #HYP_STUB_VBAR]
	msr	tpidr_el2, x0
	mov	sp, x1
	mov	x1, x2
	mov_q	x0, VMM_PROBE_MAGIC
	eret

	.global	vmm_el2_end
vmm_el2_end:

	// ---- VHE: the kernel runs at EL2 and calls in ---------------------------
	// Plain functions of the kernel (AAPCS64), in its text: the kernel's
	// page tables map them, so no EL2 identity map or copy is needed.
	.section .text.vmm_vhe, "ax"

	.macro	vhe_park_vector
	b	vhe_park
	.balign	0x80
	.endm

	// A guest exit: its x0/x1 on the (kernel's) stack, x0 = the kind.
	.macro	vhe_lower_vector kind
	stp	x0, x1, [sp, #-16]!
	mov	x0, #\kind
	b	vmm_vhe_exit
	.balign	0x80
	.endm

	// In VBAR_EL2 only while a guest runs, with every exception masked at
	// EL2: an exception from EL2 itself would be a bug of ours.
	.balign	2048
	.global	vmm_vhe_vectors
vmm_vhe_vectors:
	.rept	8
	vhe_park_vector
	.endr
	vhe_lower_vector EXIT_SYNC
	vhe_lower_vector EXIT_IRQ
	vhe_lower_vector EXIT_FIQ
	vhe_lower_vector EXIT_SERROR
	.rept	4
	vhe_park_vector
	.endr

vhe_park:
	wfe
	b	vhe_park

	// u64 vmm_vhe_run(Context *guest, u8 *hyp_page): runs the guest until an
	// exit; returns 0. Kernel addresses. The caller has interrupts masked;
	// every exception is masked here until the return. The kernel's
	// TPIDR_EL2 (its per-CPU offset) and VBAR_EL2 are put aside in the hyp
	// page meanwhile, its callee-saved registers and EL1/EL0 state in the
	// hyp page's host context.
	.global	vmm_vhe_run
vmm_vhe_run:
	mrs	x9, daif
	msr	daifset, #0xf
	str	x9, [x1, #HYP_VHE_DAIF]
	add	x2, x1, #HYP_HOST
	stp	x18, x19, [x2, #144]
	stp	x20, x21, [x2, #160]
	stp	x22, x23, [x2, #176]
	stp	x24, x25, [x2, #192]
	stp	x26, x27, [x2, #208]
	stp	x28, x29, [x2, #224]
	str	x30, [x2, #240]
	mov	x3, sp
	str	x3, [x1, #HYP_VHE_SP]
	mrs	x3, tpidr_el2
	str	x3, [x1, #HYP_VHE_TPIDR]
	mrs	x3, vbar_el2
	str	x3, [x1, #HYP_VHE_VBAR]
	msr	tpidr_el2, x1
	str	x0, [x1, #HYP_GUEST]
	mov	x1, x0
	el1_regs save, vhehost, x2
	adr	x3, vmm_vhe_vectors
	msr	vbar_el2, x3
	guest_enter vhe

vmm_vhe_exit:
	el2_tier
	guest_exit vhe
	el1_regs load, vhehost, x2
	ldr	x3, [x0, #HYP_VHE_VBAR]
	msr	vbar_el2, x3
	ldr	x3, [x0, #HYP_VHE_SP]
	mov	sp, x3
	ldp	x18, x19, [x2, #144]
	ldp	x20, x21, [x2, #160]
	ldp	x22, x23, [x2, #176]
	ldp	x24, x25, [x2, #192]
	ldp	x26, x27, [x2, #208]
	ldp	x28, x29, [x2, #224]
	ldr	x30, [x2, #240]
	ldr	x3, [x0, #HYP_VHE_DAIF]
	ldr	x4, [x0, #HYP_VHE_TPIDR]
	msr	tpidr_el2, x4
	isb
	msr	daif, x3
	mov	x0, xzr
	ret

	// void vmm_vhe_tlbi_vmid(u64 vttbr): invalidates that VMID's TLB entries
	// on every CPU. With E2H and TGE set TLB maintenance targets the host's
	// EL2&0 regime, so TGE is cleared around it, exceptions masked.
	.global	vmm_vhe_tlbi_vmid
vmm_vhe_tlbi_vmid:
	mrs	x5, daif
	msr	daifset, #0xf
	mrs	x1, vttbr_el2
	mrs	x2, hcr_el2
	msr	vttbr_el2, x0
	bic	x3, x2, #(1 << 27)
	msr	hcr_el2, x3
	isb
	tlbi	vmalls12e1is
	dsb	ish
	msr	hcr_el2, x2
	msr	vttbr_el2, x1
	isb
	msr	daif, x5
	ret

	// u64 vmm_vhe_gic_vtr(void): ICH_VTR_EL2, or 0 without the GICv3 system
	// register interface at EL2.
	.global	vmm_vhe_gic_vtr
vmm_vhe_gic_vtr:
	mrs	x0, icc_sre_el2
	tbz	x0, #0, 1f
	mrs	x0, ich_vtr_el2
	ret
1:	mov	x0, xzr
	ret
