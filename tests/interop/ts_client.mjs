#!/usr/bin/env node
// Drive Cairn with the official TypeScript SDK client (@modelcontextprotocol/sdk), as a host would.
//
//   node ts_client.mjs --author JSON --call JSON [--token TOKEN] [--observer SPEC]... TARGET...
//
// TARGET is an HTTP URL (streamable HTTP; --token adds "Authorization: Bearer TOKEN") or a command and its
// arguments (stdio; put "--" before it so its own flags are not read as ours). The spawned server inherits
// this process's environment and working directory.
// --author: author_tool's arguments; --call: {"arguments": {...}, "result": <expected value>}.
// --observer: another connection that must also hear about the new tool: an HTTP URL (a second session, with
// the same token) or a JSON array [command, arg, ...] (a second server process, e.g. on the same registry).
// Observers use the SDK's `listChanged` client option (auto-refresh), the primary an explicit handler.
//
// Checks: the handshake advertises tools.listChanged; the meta-tools are listed; author_tool succeeds; every
// connection gets notifications/tools/list_changed within 10 s; the new tool is listed with an outputSchema;
// a direct call returns structuredContent {result: ...} that the SDK validated and that an independent strict
// ajv accepts; call_tool returns the same. Prints one JSON line on stdout and exits 0, or prints
// "ts_client: FAILED: ..." on stderr and exits 1.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";

// ajv is the SDK's own dependency (not ours): resolve it from the SDK, hoisted or nested.
const requireFromSdk = createRequire(import.meta.resolve("@modelcontextprotocol/sdk/client/index.js"));
const Ajv = requireFromSdk("ajv").default;

const META_TOOLS = ["author_tool", "run_code", "search_tools", "call_tool", "get_tool", "tool_history",
  "rollback_tool", "deprecate_tool"];
const NOTIFY_TIMEOUT_MS = 10_000;
const OVERALL_TIMEOUT_MS = 60_000;

class CheckFailed extends Error {}

function check(condition, message, detail) {
  if (!condition) {
    throw new CheckFailed(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
  }
}

function parseArgs(argv) {
  const opts = { observers: [], target: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new CheckFailed(`usage: ${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--") { opts.target = argv.slice(i + 1); break; }
    else if (arg === "--token") opts.token = value();
    else if (arg === "--author") opts.author = JSON.parse(value());
    else if (arg === "--call") opts.call = JSON.parse(value());
    else if (arg === "--observer") {
      const v = value();
      opts.observers.push(v.startsWith("[") ? { command: JSON.parse(v) } : { url: v });
    } else if (arg.startsWith("--")) throw new CheckFailed(`usage: unknown option ${arg}`);
    else { opts.target = argv.slice(i); break; }
  }
  if (!opts.author || !opts.call || opts.target.length === 0) {
    throw new CheckFailed("usage: ts_client.mjs --author JSON --call JSON [--token T] [--observer SPEC]... TARGET...");
  }
  const [first] = opts.target;
  opts.primary = /^https?:\/\//.test(first) ? { url: first } : { command: opts.target };
  return opts;
}

function describe(spec) {
  return spec.url ? `http ${spec.url}` : `stdio ${spec.command.join(" ")}`;
}

function makeTransport(spec, token) {
  if (spec.url) {
    const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : undefined;
    return new StreamableHTTPClientTransport(new URL(spec.url), { requestInit });
  }
  const [command, ...args] = spec.command;
  return new StdioClientTransport({ command, args, env: { ...process.env }, cwd: process.cwd(), stderr: "inherit" });
}

// A connection: an SDK Client, what its handshake negotiated, and the list_changed notifications it heard.
class Connection {
  constructor(label, spec, token, { autoRefresh }) {
    this.label = label;
    this.spec = spec;
    this.transport = makeTransport(spec, token);
    this.notifications = [];   // [ms since start, tool names after auto-refresh or null]
    this.errors = [];
    this._waiters = [];
    const options = {};
    if (autoRefresh) {
      options.listChanged = {
        tools: {
          autoRefresh: true, debounceMs: 0,
          onChanged: (error, tools) => this._heard(error, tools ? tools.map((t) => t.name) : null),
        },
      };
    }
    this.client = new Client({ name: `cairn-interop-${label}`, version: "1.0.0" }, options);
    if (!autoRefresh) {
      this.client.setNotificationHandler(ToolListChangedNotificationSchema, () => this._heard(null, null));
    }
    // Errors while closing are the SDK aborting its own open SSE stream: kept apart, reported, not fatal.
    this.closeNoise = [];
    this.client.onerror = (error) => (this.closing ? this.closeNoise : this.errors).push(String(error));
    // Record what initialize negotiated (the SDK keeps protocolVersion to itself on stdio).
    const request = this.client.request.bind(this.client);
    this.client.request = async (req, ...rest) => {
      const result = await request(req, ...rest);
      if (req.method === "initialize") this.initialize = result;
      return result;
    };
  }

  _heard(error, toolNames) {
    if (error) this.errors.push(`list refresh after notification failed: ${error}`);
    this.notifications.push([Math.round(performance.now() - started), toolNames]);
    for (const waiter of this._waiters.splice(0)) waiter();
  }

  async connect() {
    await this.client.connect(this.transport);
    check(this.initialize, `${this.label}: no initialize result recorded`);
    const caps = this.client.getServerCapabilities();
    check(caps?.tools?.listChanged === true, `${this.label}: server capabilities.tools.listChanged is not true`, caps);
  }

  // Resolve once a notification numbered > `seen` arrives (and, with auto-refresh, lists `name`).
  async notifiedAfter(seen, name) {
    const deadline = performance.now() + NOTIFY_TIMEOUT_MS;
    const ready = () => this.notifications.length > seen &&
      (this.notifications.at(-1)[1] === null || this.notifications.at(-1)[1].includes(name));
    while (!ready()) {
      const left = deadline - performance.now();
      check(left > 0, `${this.label}: no notifications/tools/list_changed listing ${name} within ` +
        `${NOTIFY_TIMEOUT_MS / 1000} s (heard: ${JSON.stringify(this.notifications)})`);
      let timer;
      await Promise.race([
        new Promise((resolve) => this._waiters.push(resolve)),
        new Promise((resolve) => { timer = setTimeout(resolve, left); }),
      ]);
      clearTimeout(timer);
    }
    return this.notifications.at(-1)[0];
  }

  async close() {
    let deleteError;
    this.closing = true;
    if (this.transport instanceof StreamableHTTPClientTransport && this.transport.sessionId) {
      await this.transport.terminateSession().catch((error) => { deleteError = error; });
    }
    await this.client.close();
    if (deleteError) this.errors.push(`DELETE of the session failed: ${deleteError}`);
  }
}

async function listNames(conn) {
  const { tools } = await conn.client.listTools();
  return tools;
}

async function expectUnauthorized(spec) {
  const client = new Client({ name: "cairn-interop-no-token", version: "1.0.0" });
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(spec.url)));
  } catch (error) {
    return { code: error.code, message: String(error) };
  } finally {
    await client.close().catch(() => {});
  }
  throw new CheckFailed("a connection without the bearer token was accepted");
}

const started = performance.now();

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const toolName = opts.author.name;
  const expected = { result: opts.call.result };
  const out = { ok: false, primary: describe(opts.primary), observers: opts.observers.map(describe) };

  if (opts.token) {
    check(opts.primary.url, "--token needs an HTTP target");
    out.withoutToken = await expectUnauthorized(opts.primary);
    check(out.withoutToken.code === 401, "a tokenless connection failed, but not with HTTP 401", out.withoutToken);
  }

  const primary = new Connection("primary", opts.primary, opts.token, { autoRefresh: false });
  const observers = opts.observers.map((spec, i) => new Connection(`observer${i + 1}`, spec, opts.token,
    { autoRefresh: true }));
  const all = [primary, ...observers];
  try {
    // One after the other, as tests/test_e2e.py does: two first starts on a new registry at once race in
    // the registry's initialisation (README/.gitignore temp files, git init), which is not what this checks.
    for (const conn of all) await conn.connect();
    out.protocolVersion = primary.initialize.protocolVersion;
    out.serverInfo = primary.initialize.serverInfo;
    out.capabilities = primary.initialize.capabilities;
    out.observerProtocolVersions = observers.map((c) => c.initialize.protocolVersion);

    // Every connection lists first: the meta-tools are there, the new tool is not yet.
    for (const conn of all) {
      const names = (await listNames(conn)).map((t) => t.name);
      for (const meta of META_TOOLS) check(names.includes(meta), `${conn.label}: ${meta} is not listed`, names);
      check(!names.includes(toolName), `${conn.label}: ${toolName} is listed before it was authored`, names);
      if (conn === primary) out.toolsBefore = names;
    }

    const seen = all.map((c) => c.notifications.length);
    const authorStarted = performance.now() - started;
    const authored = await primary.client.callTool({ name: "author_tool", arguments: opts.author });
    check(!authored.isError, "author_tool failed", authored.content);
    check(authored.structuredContent?.name === toolName, "author_tool's structuredContent does not name the tool",
      authored.structuredContent);
    out.authored = { version: authored.structuredContent.version, commit: authored.structuredContent.commit };

    // Every connection hears about it (observers: and their auto-refreshed list holds the tool).
    const heardAt = await Promise.all(all.map((c, i) => c.notifiedAfter(seen[i], toolName)));
    out.notifiedAfterMs = Object.fromEntries(all.map((c, i) => [c.label,
      Math.max(0, heardAt[i] - Math.round(authorStarted))]));

    const tools = await listNames(primary);
    const tool = tools.find((t) => t.name === toolName);
    check(tool, `${toolName} is not listed after the notification`, tools.map((t) => t.name));
    check(tool.outputSchema && tool.outputSchema.type === "object", `${toolName} has no object outputSchema`, tool);
    check(tool.inputSchema?.type === "object", `${toolName} has no object inputSchema`, tool);
    out.tool = { name: tool.name, title: tool.title, inputSchema: tool.inputSchema, outputSchema: tool.outputSchema,
      annotations: tool.annotations, _meta: tool._meta };
    // Having listed it, the SDK client holds a validator for its output and applies it inside callTool.
    check(typeof primary.client.getToolOutputValidator(toolName) === "function",
      "the SDK client cached no output validator for the tool");

    const direct = await primary.client.callTool({ name: toolName, arguments: opts.call.arguments });
    check(!direct.isError, `${toolName} returned an error`, direct.content);
    check(isDeepStrictEqual(direct.structuredContent, expected), `${toolName}'s structuredContent`,
      { got: direct.structuredContent, expected });
    const text = direct.content.find((c) => c.type === "text");
    check(text && isDeepStrictEqual(JSON.parse(text.text), opts.call.result), `${toolName}'s text content`,
      direct.content);
    out.structuredContent = direct.structuredContent;

    // Independent validation: the SDK's ajv provider, and a strict ajv that also checks the schema itself.
    const sdkValidator = new AjvJsonSchemaValidator().getValidator(tool.outputSchema);
    check(sdkValidator(direct.structuredContent).valid, "SDK ajv rejects structuredContent",
      sdkValidator(direct.structuredContent).errorMessage);
    const strict = new Ajv({ strict: true, allErrors: true, validateSchema: true });
    const validate = strict.compile(tool.outputSchema);
    check(validate(direct.structuredContent), "strict ajv rejects structuredContent", validate.errors);
    check(!validate({ result: { not: "the declared type" } }) && !validate({}),
      "the outputSchema accepts values it should not", tool.outputSchema);
    strict.compile(tool.inputSchema);
    check(strict.validate(tool.inputSchema, opts.call.arguments), "the call's arguments do not match inputSchema",
      strict.errors);
    out.ajv = "structuredContent valid against outputSchema (SDK in callTool, SDK provider, strict ajv)";

    const viaMeta = await primary.client.callTool({ name: "call_tool",
      arguments: { name: toolName, arguments: opts.call.arguments } });
    check(!viaMeta.isError, "call_tool returned an error", viaMeta.content);
    check(isDeepStrictEqual(viaMeta.structuredContent, expected), "call_tool's structuredContent",
      { got: viaMeta.structuredContent, expected });
    out.viaCallTool = viaMeta.structuredContent;

    // Each observer calls the tool directly too (its auto-refreshed list gave its client the validator).
    out.observerResults = [];
    for (const conn of observers) {
      check(typeof conn.client.getToolOutputValidator(toolName) === "function",
        `${conn.label}: the auto-refreshed list gave its client no output validator`);
      const result = await conn.client.callTool({ name: toolName, arguments: opts.call.arguments });
      check(!result.isError && isDeepStrictEqual(result.structuredContent, expected),
        `${conn.label}: ${toolName}'s result`, result);
      out.observerResults.push(result.structuredContent);
    }
    out.notifications = Object.fromEntries(all.map((c) => [c.label, c.notifications.length]));
  } finally {
    for (const conn of all) {
      await conn.close().catch((error) => conn.errors.push(`close failed: ${error}`));
    }
  }
  out.clientErrors = Object.fromEntries(all.map((c) => [c.label, c.errors]));
  out.closeNoise = Object.fromEntries(all.map((c) => [c.label, c.closeNoise]));
  check(all.every((c) => c.errors.length === 0), "the SDK client reported errors", out.clientErrors);
  out.ok = true;
  out.elapsedMs = Math.round(performance.now() - started);
  return out;
}

const watchdog = setTimeout(() => {
  process.stderr.write(`ts_client: FAILED: gave up after ${OVERALL_TIMEOUT_MS / 1000} s\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

try {
  const out = await main();
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = 0;
} catch (error) {
  const message = error instanceof CheckFailed ? error.message : (error?.stack ?? String(error));
  process.stderr.write(`ts_client: FAILED: ${message}\n`);
  process.exitCode = 1;
}
