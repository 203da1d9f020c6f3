export {
  findRedisServer,
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  type LocalRedis,
  type LocalRedisOptions,
  type LocalS3,
  type LocalS3Options,
  startLocalRedis,
  startLocalS3,
} from "./local-services/index.js";
export { main } from "./main.js";
export { FORCED_STOP_EXIT_MS } from "./shutdown.js";
