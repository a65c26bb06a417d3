"""Cairn: an MCP server where agents turn the code they write into lasting, tested, versioned tools."""

__version__ = "0.1.0"
