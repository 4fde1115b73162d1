using SocketReaper.Testing;
using Xunit;

namespace LibBpf.Tests;

public sealed class MapTests
{
    [PrivilegedFact]
    public void Update_lookup_delete_round_trip()
    {
        using var obj = TestObjects.Load();
        using var map = obj.Map("lbn_hash");
        Assert.Equal((4, 8, 1024), (map.KeySize, map.ValueSize, map.MaxEntries));

        map.Update(7u, 700UL);
        Assert.True(map.TryLookup(7u, out ulong value));
        Assert.Equal(700UL, value);
        Assert.False(map.TryLookup(8u, out ulong _));
        Assert.True(map.Delete(7u));
        Assert.False(map.Delete(7u));
        Assert.False(map.TryLookup(7u, out ulong _));
    }

    [PrivilegedFact]
    public void A_program_names_the_maps_it_uses_by_the_ids_its_maps_report()
    {
        using var obj = TestObjects.Load();
        using var hash = obj.Map("lbn_hash");
        using var percpu = obj.Map("lbn_percpu");
        var used = BpfInfo.ProgramMapIds(obj.Program("lbn_connect4").Id);
        Assert.Contains(hash.Id, used);
        Assert.DoesNotContain(percpu.Id, used);
        Assert.NotEqual(hash.Id, percpu.Id);
        Assert.Empty(BpfInfo.ProgramMapIds(uint.MaxValue));
    }

    [PrivilegedFact]
    public void Update_with_NOEXIST_on_an_existing_key_is_EEXIST()
    {
        using var obj = TestObjects.Load();
        using var map = obj.Map("lbn_hash");
        map.Update(1u, 1UL);
        var e = Assert.Throws<BpfException>(() => map.Update(1u, 2UL, flags: 1));
        Assert.Equal(Errno.EEXIST, e.Errno);
        Assert.Equal("update element in map 'lbn_hash': EEXIST (File exists)", e.Message);
    }

    [PrivilegedFact]
    public void Wrong_key_or_value_size_is_rejected_before_the_kernel_sees_it()
    {
        using var obj = TestObjects.Load();
        using var map = obj.Map("lbn_hash");
        var e = Assert.Throws<ArgumentException>(() => map.Update(1UL, 1UL));
        Assert.Contains("4-byte keys", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => map.Update(1u, 1u));
    }

    [PrivilegedFact]
    public void Batch_update_lookup_and_delete_cover_every_entry()
    {
        using var obj = TestObjects.Load();
        using var map = obj.Map("lbn_hash");
        var keys = Enumerable.Range(1, 300).Select(i => (uint)i).ToArray();
        var values = keys.Select(k => (ulong)k * 10).ToArray();
        map.UpdateBatch<uint, ulong>(keys, values);

        var seen = new Dictionary<uint, ulong>();
        var keyBuffer = new uint[64];
        var valueBuffer = new ulong[64];
        uint? cursor = null;
        do
        {
            var n = map.LookupBatch<uint, ulong>(keyBuffer, valueBuffer, ref cursor);
            for (var i = 0; i < n; i++)
            {
                seen[keyBuffer[i]] = valueBuffer[i];
            }
        }
        while (cursor is not null);

        Assert.Equal(300, seen.Count);
        Assert.All(seen, kv => Assert.Equal(kv.Key * 10UL, kv.Value));
        Assert.Equal(seen.OrderBy(kv => kv.Key), map.ReadAll<uint, ulong>(batchSize: 64).Select(e => KeyValuePair.Create(e.Key, e.Value)).OrderBy(kv => kv.Key));

        map.DeleteBatch<uint>(keys.AsSpan(0, 100));
        Assert.False(map.TryLookup(50u, out ulong _));
        Assert.True(map.TryLookup(150u, out ulong _));
    }

    [PrivilegedFact]
    public void Next_key_walks_the_map()
    {
        using var obj = TestObjects.Load();
        using var map = obj.Map("lbn_hash");
        foreach (var k in new uint[] { 3, 5, 9 })
        {
            map.Update(k, 0UL);
        }

        var found = new List<uint>();
        Span<byte> key = stackalloc byte[4];
        Span<byte> next = stackalloc byte[4];
        var first = true;
        while (map.TryGetNextKey(first ? default : key, next))
        {
            first = false;
            next.CopyTo(key);
            found.Add(BitConverter.ToUInt32(key));
        }

        Assert.Equal([3u, 5u, 9u], found.Order());
        Assert.Equal(found, map.Keys<uint>());
        Assert.Throws<ArgumentException>(() => map.Keys<ulong>());
    }

    [PrivilegedFact]
    public void A_pinned_map_keeps_its_contents_across_loads_and_opens_from_its_pin()
    {
        var dir = $"/sys/fs/bpf/lbn{Guid.NewGuid():N}"[..26];
        Directory.CreateDirectory(dir);
        try
        {
            var pin = $"{dir}/hash";
            using (var first = TestObjects.Open())
            {
                first.Map("lbn_hash").SetPinPath(pin);
                first.Load();
                Assert.True(first.Map("lbn_hash").IsPinned);
                Assert.Equal(pin, first.Map("lbn_hash").PinPath);
                first.Map("lbn_hash").Update(5u, 500UL);
            }

            // The object is gone; the pin holds the map, and the next load reuses it.
            using (var second = TestObjects.Open())
            {
                second.Map("lbn_hash").SetPinPath(pin);
                second.Load();
                Assert.True(second.Map("lbn_hash").TryLookup(5u, out ulong kept));
                Assert.Equal(500UL, kept);
            }

            using (var opened = BpfMap.OpenPinned(pin))
            {
                Assert.Equal(("lbn_hash", 4, 8, 1024), (opened.Name, opened.KeySize, opened.ValueSize, opened.MaxEntries));
                Assert.True(opened.TryLookup(5u, out ulong viaPin));
                Assert.Equal(500UL, viaPin);
                Assert.Throws<InvalidOperationException>(() => opened.SetPinPath(null));
            }

            // A map of another shape pinned there is refused rather than silently replaced.
            using (var clash = TestObjects.Open())
            {
                clash.Map("lbn_percpu").SetPinPath(pin);
                var e = Assert.Throws<BpfException>(clash.Load);
                Assert.Equal(Errno.EINVAL, e.Errno);
            }

            using (var last = TestObjects.Open())
            {
                last.Map("lbn_hash").SetPinPath(pin);
                last.Load();
                last.Map("lbn_hash").Unpin();
                Assert.False(File.Exists(pin));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [PrivilegedFact]
    public void Opening_a_pin_that_is_not_a_map_names_the_path()
    {
        var e = Assert.Throws<BpfException>(() => BpfMap.OpenPinned("/sys/fs/bpf/lbn-does-not-exist"));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Contains("/sys/fs/bpf/lbn-does-not-exist", e.Message, StringComparison.Ordinal);
    }
}
