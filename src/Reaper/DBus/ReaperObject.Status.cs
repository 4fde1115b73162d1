using System.Globalization;
using Tmds.DBus.Protocol;

namespace SocketReaper.DBus;

/// <summary>GetStatus(): what the daemon is doing and the last sweeps, as a{sv}.</summary>
internal sealed partial class ReaperObject
{
    private ValueTask GetStatus(MethodContext context)
    {
        Reply(context, "GetStatus", Status());
        return ValueTask.CompletedTask;
    }

    private Dictionary<string, VariantValue> Status()
    {
        var status = new Dictionary<string, VariantValue>
        {
            ["version"] = VariantValue.String(SocketReaper.BuildInfo.Version),
            ["state"] = VariantValue.String(_daemon.IsSweeping ? "sweeping" : "ready"),
            ["uptime_seconds"] = VariantValue.UInt64((ulong)(DateTimeOffset.UtcNow - _daemon.StartedAt).TotalSeconds),
            ["sweeps_run"] = VariantValue.UInt64(_daemon.SweepsRun),
            ["namespaces_known"] = VariantValue.UInt32((uint)_daemon.NamespacesKnown),
            ["default_limit"] = VariantValue.UInt64((ulong)_daemon.Limits.Limit),
            ["max_limit"] = VariantValue.UInt64((ulong)_daemon.Limits.MaxLimit),
            ["services"] = VariantValue.UInt32((uint)_daemon.Services.Count),
            ["history_unreadable_lines"] = VariantValue.UInt64((ulong)_daemon.HistoryUnreadable),
        };
        var recent = _daemon.Recent;
        if (recent.Count > 0 && recent[^1] is { } last)
        {
            status["last_sweep_id"] = VariantValue.UInt64(last.Id);
            status["last_sweep_trigger"] = VariantValue.String(last.Result.Trigger);
            status["last_sweep_destroyed"] = VariantValue.UInt64((ulong)last.Result.Destroyed);
            status["last_sweep_finished"] = VariantValue.String(last.FinishedAt.ToString("O", CultureInfo.InvariantCulture));
        }

        // The automatic sweeps among the last 20, newest first:
        // "<id> <finished> <trigger> destroyed=<n> scope=<targeted|full> namespaces=<visited>/<visited + left out>"
        // (would_destroy= in observe mode).
        status["recent_automatic_sweeps"] = VariantValue.Array(recent
            .Where(c => c.Result.Trigger is not ("dbus" or "cli"))
            .Reverse()
            .Select(c => string.Create(CultureInfo.InvariantCulture,
                $"{c.Id} {c.FinishedAt:O} {c.Result.Trigger} {(c.Result.DryRun ? "would_destroy" : "destroyed")}={(c.Result.DryRun ? c.Result.WouldDestroy : c.Result.Destroyed)} " +
                $"scope={(c.Result.Targeted ? "targeted" : "full")} namespaces={c.Result.NamespacesVisited}/{c.Result.NamespacesVisited + c.Result.NamespacesSkipped + c.Result.NamespacesOutOfScope}"))
            .ToArray());

        return status;
    }
}
