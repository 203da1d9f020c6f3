export { findRedisServer, type LocalRedis, type LocalRedisOptions, startLocalRedis } from "./local-redis.js";
export {
  LOCAL_S3_ACCESS_KEY_ID,
  LOCAL_S3_SECRET_ACCESS_KEY,
  type LocalS3,
  type LocalS3Options,
  startLocalS3,
} from "./local-s3.js";
