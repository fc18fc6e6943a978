DROP TABLE media_uploaders;
