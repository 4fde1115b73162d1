namespace SocketReaper.Bench;
internal static class SoakBench { public static int Run(string[] args) => 2; }
