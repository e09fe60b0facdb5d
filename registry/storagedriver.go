package registry

import (
	"context"
	"fmt"
	"maps"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	// distribution's drivers register themselves with its factory when
	// imported; these are the two Signet offers (storage.registry.driver).
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/signet-registry/signet/config"
)

// blobStorage is the storage driver for blobs and manifests: the embedded
// app and the manifest index both build theirs from it, so the existence
// checks behind the signature API look where pushes went.
type blobStorage struct {
	driver string
	params map[string]any
}

// blobStorageFor turns storage.registry into a driver configuration. The
// filesystem driver always stores under root (DataDir/registry).
func blobStorageFor(cfg config.Storage, root string) blobStorage {
	if cfg.Registry.Driver == config.DriverS3 {
		return blobStorage{driver: config.DriverS3, params: maps.Clone(cfg.Registry.Parameters)}
	}
	return blobStorage{driver: config.DriverFilesystem, params: map[string]any{"rootdirectory": root}}
}

// configuration is the driver section of distribution's configuration.
func (b blobStorage) configuration() configuration.Storage {
	return configuration.Storage{
		b.driver: configuration.Parameters(maps.Clone(b.params)),
		"delete": configuration.Parameters{"enabled": true},
		// No redirects: clients must talk to Signet for every blob (a
		// presigned S3 URL would bypass access control and the logs).
		"redirect": configuration.Parameters{"disable": true},
	}
}

// create builds a driver instance.
func (b blobStorage) create(ctx context.Context) (storagedriver.StorageDriver, error) {
	drv, err := factory.Create(ctx, b.driver, maps.Clone(b.params))
	if err != nil {
		return nil, fmt.Errorf("storage driver %s: %w", b.driver, err)
	}
	return drv, nil
}
