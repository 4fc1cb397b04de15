package store_test

import (
	"testing"

	"github.com/bonychat/bonychat-adapter/store"
	"github.com/bonychat/bonychat-adapter/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}
