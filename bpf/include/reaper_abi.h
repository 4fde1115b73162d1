/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * REAPER_ABI(type, name): a global that exists only for its type, so the object's BTF keeps every
 * struct and enum shared with C# even when the compiler folds each use away — the layout tests
 * compare the C# twins against it. Its section is one libbpf skips: no map is made for it.
 */
#ifndef REAPER_ABI_H
#define REAPER_ABI_H

#define REAPER_ABI(type, name) type name SEC(".abi")

#endif
