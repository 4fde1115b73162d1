/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Shared by lbn_test.bpf.c and LibBpf.Net.Tests (TestRecord), layout checked against BTF. */
#ifndef LBN_TEST_H
#define LBN_TEST_H

struct lbn_record {
	__u32 kind;
	__u32 _pad0;
	__u64 value;
	__u16 port;
	__u8 family;
	__u8 _pad1[5];
};

#endif
