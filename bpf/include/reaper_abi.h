/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * REAPER_ABI(type, name): a global that exists only for its type, so the object's BTF keeps every
 * struct and enum shared with C# even when the compiler folds each use away — the layout tests
 * compare the C# twins against it. Its section's name starts with ".debug_", which libbpf skips
 * without a word (as it does DWARF): no map is made for it, and no "unrecognized section" line
 * reaches the daemon's log at every start.
 */
#ifndef REAPER_ABI_H
#define REAPER_ABI_H

#define REAPER_ABI(type, name) type name SEC(".debug_reaper_abi")

#endif
