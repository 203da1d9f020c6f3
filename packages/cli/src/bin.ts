#!/usr/bin/env node
import { main } from "./main.js";

// memscore supports Node 20 and 22 with the SDK version pinned in package-lock.json; the SDK's
// notice about its own future releases is not actionable for memscore's users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// Exit explicitly: a stopped worker or producer must not linger on an idle keep-alive socket.
process.exit(await main(process.argv.slice(2)));
