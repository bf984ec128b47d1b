#pragma once
// A pool of T created at start-up: the objects live in one array, free ones
// on an intrusive free list, and an account tree (PoolAccount) decides who
// may take one. Nothing is allocated after construction.
//
// T must derive from ObjectPool<T>::Hook and be default-constructible.
// Single-threaded, like the account tree: one pool per core.
#include <cassert>
#include <cstddef>
#include <memory>
#include <string>

#include <boost/intrusive/slist.hpp>

#include "io/pool/pool_account.hpp"

namespace sve {

template <class T>
class ObjectPool {
 public:
  using Hook = boost::intrusive::slist_base_hook<>;

  ObjectPool(std::string name, size_t capacity)
      : objects_(new T[capacity]), capacity_(capacity), root_(std::move(name), capacity) {
    for (size_t i = capacity; i-- > 0;) free_.push_front(objects_[i]);
  }
  ~ObjectPool() { free_.clear(); }
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // The root of the account tree; facilities hang their accounts below it.
  PoolAccount& root() { return root_; }
  size_t capacity() const { return capacity_; }
  size_t free_count() const { return free_.size(); }

  // Hands out an object for a unit that an account of this pool's tree was
  // granted. The account tree never grants more units than the pool holds,
  // so the free list cannot be empty here.
  T* take() {
    assert(!free_.empty());
    T& obj = free_.front();
    free_.pop_front();
    return &obj;
  }
  // Returns an object; the caller releases its unit on the account.
  void give(T* obj) { free_.push_front(*obj); }

  bool owns(const T* obj) const {
    return obj >= objects_.get() && obj < objects_.get() + capacity_;
  }

 private:
  std::unique_ptr<T[]> objects_;
  size_t capacity_;
  PoolAccount root_;
  boost::intrusive::slist<T, boost::intrusive::base_hook<Hook>> free_;
};

}  // namespace sve
