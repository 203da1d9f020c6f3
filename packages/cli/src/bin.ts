#!/usr/bin/env node
import { main } from "./main.js";

// Exit explicitly: a stopped worker or producer must not linger on an idle keep-alive socket.
process.exit(await main(process.argv.slice(2)));
