namespace SocketReaper.Config;

/// <summary>The configuration is wrong; the message names the setting, where it came from, and what is expected.</summary>
internal sealed class ConfigException(string message) : Exception(message);
